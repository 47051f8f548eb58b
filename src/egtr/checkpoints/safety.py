"""Limits that keep a hostile checkpoint from exhausting memory, and the one safe `torch.load`.

A file's config is checked before any of the model's tensors exist (`build_model`: at most
MAX_MODEL_BYTES for the largest weights plus one image's relation scores); files above
MAX_CHECKPOINT_FILE_BYTES are refused unread; `torch_load_safely` unpickles tensors and plain containers
only.
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from egtr.config import EGTRConfig
from egtr.models.egtr import EGTR

MAX_MODEL_BYTES = 4 << 30  # 4 GiB: ~25x the official Visual Genome model with one image's outputs
MAX_CHECKPOINT_FILE_BYTES = 4 * MAX_MODEL_BYTES  # weights, two AdamW moments and Lightning's extras


def memory_lower_bound(config: EGTRConfig) -> int:
    """Bytes (float32) that any use of a model of `config` allocates at least: the weights that grow with
    the config (frequency table, queries, encoder and decoder layers, relation head, class and predicate
    outputs) plus the relation and connectivity scores of one image (N x N x (R + 1)). A lower bound: the
    backbone and the small terms are left out."""
    d, levels = config.d_model, config.num_feature_levels

    def deformable(heads: int, points: int) -> int:  # sampling offsets, attention weights, value, output
        return 3 * d * heads * levels * points + 2 * d * d

    encoder = config.encoder_layers * (
        deformable(config.encoder_attention_heads, config.encoder_n_points) + 2 * d * config.encoder_ffn_dim
    )
    decoder = config.decoder_layers * (
        4 * d * d
        + deformable(config.decoder_attention_heads, config.decoder_n_points)
        + 2 * d * config.decoder_ffn_dim
    )
    relation = (2 * config.num_relation_sources + 1 + int(config.use_connectivity)) * d * d
    frequency = (config.num_labels + 1) ** 2 * config.num_rel_labels
    heads = d * (config.num_labels + config.num_rel_labels)
    weights = frequency + config.num_queries * 2 * d + encoder + decoder + relation + heads
    scores = config.num_queries**2 * (config.num_rel_labels + 1)
    return 4 * (weights + scores)


class ModelTooLargeError(ValueError):
    """A config whose model would need more memory than the loader's bound."""


def build_model(config: EGTRConfig, source: str, max_bytes: int = MAX_MODEL_BYTES) -> EGTR:
    """EGTR(config), refused before any tensor is allocated when it would need more than `max_bytes`."""
    needed = memory_lower_bound(config)
    if needed > max_bytes:
        raise ModelTooLargeError(
            f"{source}: its config describes a model that needs at least {needed / 2**30:.1f} GiB "
            f"(weights and one image's relation scores), above the loader's bound of "
            f"{max_bytes / 2**30:.0f} GiB; refused (num_queries={config.num_queries}, "
            f"d_model={config.d_model}, layers={config.encoder_layers}+{config.decoder_layers}, "
            f"classes={config.num_labels}, predicates={config.num_rel_labels})"
        )
    return EGTR(config)


def check_file_size(path: Path, limit: int = MAX_CHECKPOINT_FILE_BYTES) -> None:
    size = path.stat().st_size
    if size > limit:
        raise ValueError(
            f"{path}: {size / 2**30:.1f} GiB, larger than any EGTR checkpoint (bound "
            f"{limit / 2**30:.0f} GiB); refused unread"
        )


def torch_load_safely(path: Path) -> Any:
    """torch.load(weights_only=True); clear errors for truncated files and pickled Python objects.

    Files above MAX_CHECKPOINT_FILE_BYTES are refused unread; zip archives (every torch.save since 1.6)
    are memory-mapped, so tensors that are never used (optimizer states) are never read.
    """
    check_file_size(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(path))
    except pickle.UnpicklingError as error:
        if "Weights only load failed" not in str(error):
            raise ValueError(
                f"{path}: corrupt or truncated checkpoint ({str(error).splitlines()[0]})"
            ) from error
        reason = next((line for line in str(error).splitlines() if "Unsupported" in line), "")
        raise ValueError(
            f"{path}: refused to load: the file holds Python objects beyond tensors and plain containers,"
            f" and unpickling them could run arbitrary code ({reason.strip()})."
            " If you trust the file, convert it once: python -c \"import torch; c = torch.load('IN',"
            " weights_only=False); torch.save({'state_dict': c['state_dict']}, 'OUT')\" and load OUT."
        ) from error
    except Exception as error:  # a damaged archive fails anywhere inside the zip reader or unpickler
        raise ValueError(
            f"{path}: not a PyTorch checkpoint, or truncated ({type(error).__name__}: {error})"
        ) from error
