"""Official EGTR files (architecture.md §5.9): key names, config.json, Lightning and detector checkpoints.

The one place that maps official key names to this project's: `OFFICIAL_PREFIXES`.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from egtr.checkpoints.native import FREQUENCY_TABLES
from egtr.checkpoints.safety import build_model, torch_load_safely
from egtr.checkpoints.strict import load_state_strictly
from egtr.config import CONFIG_FILE_LIMIT, SIZE_LIMITS, EGTRConfig
from egtr.files import read_small_text
from egtr.models.egtr import EGTR

# official name prefix -> this project's name prefix (the one place that maps official keys)
OFFICIAL_PREFIXES = (
    ("model.backbone.conv_encoder.model.", "detector.backbone."),
    ("model.", "detector."),
    ("class_embed.0.", "detector.class_embed."),
    ("bbox_embed.0.", "detector.bbox_embed."),
    ("triplet_dist", "frequency_bias.triplet_dist"),
    ("rel_dist", "frequency_bias.rel_dist"),
    ("proj_q.", "relation_head.proj_q."),
    ("proj_k.", "relation_head.proj_k."),
    ("final_sub_proj.", "relation_head.final_sub_proj."),
    ("final_obj_proj.", "relation_head.final_obj_proj."),
    ("rel_predictor_gate.", "relation_head.rel_predictor_gate."),
    ("rel_predictor.", "relation_head.rel_predictor."),
    ("connectivity_layer.", "relation_head.connectivity_layer."),
)
SHARED_HEAD = re.compile(r"^(class_embed|bbox_embed)\.(\d+)\.(.+)$")


def rename_key(key: str, pairs: list[tuple[str, str]]) -> str | None:
    """Replace the longest matching `from` prefix of `key` by its `to` prefix; None when none matches."""
    matches = [(source, target) for source, target in pairs if key.startswith(source)]
    if not matches:
        return None
    source, target = max(matches, key=lambda pair: len(pair[0]))
    return target + key[len(source) :]


def official_to_native(state: dict[str, Tensor], source: str) -> dict[str, Tensor]:
    """Rename official EGTR keys (without the Lightning `model.` prefix) to this project's names.

    The six `class_embed.k` / `bbox_embed.k` copies of the shared official heads must be identical.
    """
    renamed: dict[str, Tensor] = {}
    for key, value in state.items():
        shared = SHARED_HEAD.match(key)
        if shared and shared.group(2) != "0":
            first = state.get(f"{shared.group(1)}.0.{shared.group(3)}")
            if first is None or not torch.equal(first, value):
                raise ValueError(
                    f"{source}: {key} differs from the layer-0 copy (box refinement is not supported)"
                )
            continue
        renamed[rename_key(key, list(OFFICIAL_PREFIXES)) or key] = (
            value  # unknown keys: reported as unexpected
        )
    return renamed


def native_to_official(model: EGTR) -> dict[str, Tensor]:
    """The model's state dict under official EGTR names, with six copies of the shared heads (architecture.md
    §5.9)."""
    reverse = [(native, official) for official, native in OFFICIAL_PREFIXES]
    official: dict[str, Tensor] = {}
    for key, value in model.state_dict().items():
        name = rename_key(key, reverse)
        shared = SHARED_HEAD.match(name)
        if shared:
            for layer in range(model.config.decoder_layers):
                official[f"{shared.group(1)}.{layer}.{shared.group(3)}"] = value
        else:
            official[name] = value
    return official


OFFICIAL_CONFIG_KEYS = (
    "num_rel_labels",
    "num_queries",
    "d_model",
    "encoder_layers",
    "decoder_layers",
    "encoder_attention_heads",
    "decoder_attention_heads",
    "encoder_ffn_dim",
    "decoder_ffn_dim",
    "dropout",
    "attention_dropout",
    "activation_dropout",
    "num_feature_levels",
    "encoder_n_points",
    "decoder_n_points",
    "init_std",
    "init_xavier_std",
    "use_freq_bias",
    "freq_bias_eps",
    "logit_adjustment",
    "logit_adj_tau",
    "smoothing",
    "rel_sample_negatives",
    "rel_sample_nonmatching",
    "rel_sample_negatives_largest",
    "rel_sample_nonmatching_largest",
    "ce_loss_coefficient",
    "bbox_loss_coefficient",
    "giou_loss_coefficient",
    "rel_loss_coefficient",
    "connectivity_loss_coefficient",
    "focal_alpha",
    "bbox_cost",
    "giou_cost",
    "auxiliary_loss",
)
UNSUPPORTED = {"two_stage": True, "with_box_refine": True, "dilation": True}


def config_from_official(path: Path, with_relations: bool) -> EGTRConfig:
    """EGTRConfig from an official config.json (Hugging Face's DeformableDetrConfig + the EGTR extras)."""
    try:
        data = json.loads(read_small_text(path, CONFIG_FILE_LIMIT))
    except (OSError, ValueError) as error:
        raise ValueError(f"{path}: unreadable config.json ({error})") from error
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object")
    for key, bad in UNSUPPORTED.items():
        if data.get(key) == bad:
            raise ValueError(f"{path}: {key}={bad} is not supported (EGTR uses {key}={not bad})")
    for key, allowed in (("position_embedding_type", "sine"), ("activation_function", "relu")):
        if data.get(key, allowed) != allowed:
            raise ValueError(f"{path}: {key}={data[key]!r} is not supported (expected {allowed!r})")
    backbone = str(data.get("backbone", "resnet50"))
    depth = re.fullmatch(r"resnet(18|34|50|101)", backbone)
    if depth is None:
        raise ValueError(f"{path}: backbone {backbone!r} is not supported (resnet18/34/50/101)")
    fields: dict[str, Any] = {"backbone_depth": int(depth.group(1))}
    id2label = data.get("id2label")
    if id2label:
        if not isinstance(id2label, dict) or not all(re.fullmatch(r"\d{1,9}", str(k)) for k in id2label):
            raise ValueError(f"{path}: id2label must map class indices to names")
        fields["num_labels"] = max(int(k) for k in id2label) + 1
        if fields["num_labels"] > SIZE_LIMITS["num_labels"][1]:  # before listing that many names
            limit = SIZE_LIMITS["num_labels"][1]
            raise ValueError(
                f"{path}: num_labels must be an integer in 1..{limit}, got {fields['num_labels']}"
            )
        names = [str(id2label.get(str(i), "")) for i in range(fields["num_labels"])]
        if not all(re.fullmatch(r"LABEL_\d+", n) for n in names):
            fields["class_names"] = names
    elif "num_labels" in data:
        fields["num_labels"] = data["num_labels"]
    fields.update({key: data[key] for key in OFFICIAL_CONFIG_KEYS if data.get(key) is not None})
    if data.get("use_log_softmax"):
        fields["frequency_bias_mode"] = "log_softmax"
    if not with_relations:
        fields.setdefault("num_rel_labels", EGTRConfig().num_rel_labels)
    try:
        return EGTRConfig(**fields)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{path}: {error}") from error


def highest_epoch_checkpoint(directory: Path) -> Path:
    candidates = sorted(directory.glob("*.ckpt"))
    if not candidates:
        raise ValueError(f"{directory}: no *.ckpt file")

    def epoch(path: Path) -> int:
        found = re.search(r"epoch=(\d+)", path.name)
        return int(found.group(1)) if found else -1

    return max(candidates, key=lambda p: (epoch(p), p.name))


def load_official_egtr(checkpoint: Path, config_path: Path, content: dict) -> EGTR:
    state = content.get("state_dict")
    if not isinstance(state, dict) or not state:
        raise ValueError(f"{checkpoint}: no state_dict in this Lightning checkpoint")
    bad = [str(k)[:80] for k in state if not isinstance(k, str) or not k.startswith("model.")]
    if bad:
        raise ValueError(
            f"{checkpoint}: state_dict keys without the Lightning 'model.' prefix: {', '.join(bad[:5])}"
        )
    model = build_model(config_from_official(config_path, with_relations=True), str(checkpoint))
    official = {k[len("model.") :]: v for k, v in state.items()}
    load_state_strictly(model, official_to_native(official, str(checkpoint)), str(checkpoint))
    return model


def load_official_detector(directory: Path) -> EGTR:
    weights = directory / "pytorch_model.bin"
    content = torch_load_safely(weights)
    if not isinstance(content, dict):
        raise ValueError(f"{weights}: expected a state dict")
    if any(str(k).startswith(("proj_q.", "rel_predictor")) for k in content):
        raise ValueError(
            f"{weights}: holds a relation head; this is an EGTR model, not a pretrained detector"
        )
    model = build_model(config_from_official(directory / "config.json", with_relations=False), str(weights))
    load_state_strictly(
        model,
        official_to_native(content, str(weights)),
        str(weights),
        ignore_prefixes=("relation_head.", FREQUENCY_TABLES),
    )
    return model
