"""This project's format: one `.safetensors` file, the EGTRConfig as JSON in its metadata (no pickle);
and the `.ckpt` files of this project's trainer (state dict under `model.`, config under `egtr_config`).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import safe_open, save

from egtr.checkpoints.safety import build_model, check_file_size
from egtr.checkpoints.strict import check_fit, load_state_strictly
from egtr.config import EGTRConfig
from egtr.files import write_atomically
from egtr.models.egtr import EGTR

FORMAT_TAG = "egtr"
NATIVE_WEIGHTS = "model.safetensors"
FREQUENCY_TABLES = "frequency_bias."


def optional_prefixes(config: EGTRConfig) -> tuple[str, ...]:
    """Keys a file of this config may lack: the frequency tables when neither the bias nor logit
    adjustment uses them (files of older versions of this project did not write them then)."""
    return () if config.use_freq_bias or config.logit_adjustment else (FREQUENCY_TABLES,)


def save_model(model: EGTR, path: str | Path, metadata: dict[str, str] | None = None) -> Path:
    """Write `model` as one safetensors file (config in its metadata), atomically. Returns the path."""
    path = Path(path)
    if path.suffix != ".safetensors":
        path = path / NATIVE_WEIGHTS
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {name: tensor.detach().contiguous().cpu() for name, tensor in model.state_dict().items()}
    info = {"format": FORMAT_TAG, "egtr_config": model.config.to_json(), **(metadata or {})}
    write_atomically(path, lambda stream: stream.write(save(tensors, metadata=info)))
    return path


def read_native_metadata(path: Path) -> dict[str, str]:
    try:
        with safe_open(str(path), framework="pt") as handle:
            return handle.metadata() or {}
    except (SafetensorError, OSError) as error:
        raise ValueError(f"{path}: not a readable safetensors file ({error})") from error


def load_native(path: Path, map_location: str | torch.device) -> EGTR:
    check_file_size(path)
    metadata = read_native_metadata(path)
    if metadata.get("format") != FORMAT_TAG or "egtr_config" not in metadata:
        raise ValueError(f"{path}: a safetensors file without an egtr config in its metadata")
    config = EGTRConfig.from_json(metadata["egtr_config"], f"{path}: metadata egtr_config")
    model = build_model(config, str(path))
    optional = optional_prefixes(config)
    check_fit(model, _header_shapes(path), str(path), optional)
    try:
        for part in _parts(path, map_location):
            load_state_strictly(model, part, str(path), optional, whole=False)
    except SafetensorError as error:
        raise ValueError(f"{path}: unreadable or truncated safetensors file ({error})") from error
    return model


PART_BYTES = 16 << 20  # weights read and copied into the model at a time
DTYPE_BYTES = {
    "F64": 8,
    "F32": 4,
    "F16": 2,
    "BF16": 2,
    "I64": 8,
    "I32": 4,
    "I16": 2,
    "I8": 1,
    "U8": 1,
    "BOOL": 1,
}


def _parts(path: Path, map_location: str | torch.device) -> Iterator[dict[str, torch.Tensor]]:
    """The file's tensors in parts of about PART_BYTES, so that loading holds the model and one part, not
    the model and a second copy of every weight (170 MB for the Visual Genome preset). The file is opened
    again for each part: safetensors maps it, and every page read stays resident while it is open."""
    groups, size = [[]], 0
    with safe_open(str(path), framework="pt") as handle:
        for name in handle.keys():  # noqa: SIM118 (the handle is not iterable)
            view = handle.get_slice(name)
            size += math.prod(view.get_shape()) * DTYPE_BYTES.get(view.get_dtype(), 8)
            groups[-1].append(name)
            if size >= PART_BYTES:
                groups.append([])
                size = 0
    for names in filter(None, groups):
        with safe_open(str(path), framework="pt", device=str(map_location)) as handle:
            part = {name: handle.get_tensor(name) for name in names}
        yield part


def _header_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    """Tensor name -> shape from a safetensors header, without reading any tensor."""
    try:
        with safe_open(str(path), framework="pt") as handle:
            return {key: tuple(handle.get_slice(key).get_shape()) for key in handle.keys()}  # noqa: SIM118
    except (SafetensorError, OSError) as error:
        raise ValueError(f"{path}: not a readable safetensors file ({error})") from error


def load_trainer_checkpoint(path: Path, content: dict) -> EGTR:
    if not isinstance(content["egtr_config"], dict):
        raise ValueError(f"{path}: egtr_config is not a mapping of settings")
    try:
        config = EGTRConfig.from_dict(content["egtr_config"])
    except (TypeError, ValueError) as error:
        raise ValueError(f"{path}: egtr_config: {error}") from error
    model = build_model(config, str(path))
    state = content.get("state_dict", {})
    if not isinstance(state, dict):
        raise ValueError(f"{path}: state_dict is not a mapping")
    state = {k[len("model.") :]: v for k, v in state.items() if isinstance(k, str) and k.startswith("model.")}
    load_state_strictly(model, state, str(path), optional_prefixes(config))
    return model
