"""Save and load models: this project's format and the official EGTR / pretrained-detector files.

Native format: one `.safetensors` file holding the weights, with the EGTRConfig as JSON in its metadata
(no pickle). Official files (architecture.md §5.9) are read with `torch.load(weights_only=True)` only:
- an official EGTR Lightning `.ckpt` (keys `model.<official name>`), with `config.json` in its artifact
  directory (the `.ckpt` lives in `<artifact>/checkpoints/`), or the artifact directory (highest epoch);
- an official pretrained-detector directory (`config.json` + `pytorch_model.bin`, HF `save_pretrained`):
  detector weights, freshly initialized relation head;
- a `.ckpt` written by this project's trainer (state dict under `model.`, config under `egtr_config`).
Loading is strict: missing, unexpected or mis-shaped keys raise a ValueError listing them. Files written
by older versions of this project may lack the frequency tables when both `use_freq_bias` and
`logit_adjustment` were off; they load with empty tables.

Nothing in a file decides which other file is read: the config in a safetensors file's metadata is JSON
text only, an official `config.json` is found by its place beside the checkpoint. A file's config is
checked before any of the model's tensors exist: sizes within `egtr.config.SIZE_LIMITS`, and at most
MAX_MODEL_BYTES for the largest weights plus one image's relation scores (`memory_lower_bound`);
checkpoint files above MAX_CHECKPOINT_FILE_BYTES are refused unread, and a safetensors file's tensor
names and shapes are compared with the model's before its tensors are read.
"""

from __future__ import annotations

import json
import pickle
import re
import zipfile
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save
from torch import Tensor

from egtr.config import CONFIG_FILE_LIMIT, SIZE_LIMITS, EGTRConfig
from egtr.files import read_small_text, write_atomically
from egtr.models.backbone import load_backbone_weights
from egtr.models.egtr import EGTR

FORMAT_TAG = "egtr"
NATIVE_WEIGHTS = "model.safetensors"
MAX_MODEL_BYTES = 4 << 30  # 4 GiB: ~25x the official Visual Genome model with one image's outputs
MAX_CHECKPOINT_FILE_BYTES = 4 * MAX_MODEL_BYTES  # weights, two AdamW moments and Lightning's extras
FREQUENCY_TABLES = "frequency_bias."

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


# ----------------------------------------------------------------------------- native format
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


def _load_native(path: Path, map_location: str | torch.device) -> EGTR:
    check_file_size(path)
    metadata = read_native_metadata(path)
    if metadata.get("format") != FORMAT_TAG or "egtr_config" not in metadata:
        raise ValueError(f"{path}: a safetensors file without an egtr config in its metadata")
    config = EGTRConfig.from_json(metadata["egtr_config"], f"{path}: metadata egtr_config")
    model = build_model(config, str(path))
    optional = optional_prefixes(config)
    check_fit(model, _header_shapes(path), str(path), optional)
    try:
        state = load_file(str(path), device=str(map_location))
    except SafetensorError as error:
        raise ValueError(f"{path}: unreadable or truncated safetensors file ({error})") from error
    load_state_strictly(model, state, str(path), optional)
    return model


def _header_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    """Tensor name -> shape from a safetensors header, without reading any tensor."""
    try:
        with safe_open(str(path), framework="pt") as handle:
            return {key: tuple(handle.get_slice(key).get_shape()) for key in handle.keys()}  # noqa: SIM118
    except (SafetensorError, OSError) as error:
        raise ValueError(f"{path}: not a readable safetensors file ({error})") from error


# ----------------------------------------------------------------------------- size checks
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


def optional_prefixes(config: EGTRConfig) -> tuple[str, ...]:
    """Keys a file of this config may lack: the frequency tables when neither the bias nor logit
    adjustment uses them (files of older versions of this project did not write them then)."""
    return () if config.use_freq_bias or config.logit_adjustment else (FREQUENCY_TABLES,)


# ----------------------------------------------------------------------------- strict loading
def load_state_strictly(
    model: EGTR, state: dict[str, Tensor], source: str, ignore_prefixes: tuple = ()
) -> None:
    """Load `state` into `model`; raise ValueError listing missing, unexpected and mis-shaped keys.

    Keys starting with one of `ignore_prefixes` may be missing (they keep their initialization).
    """
    if not isinstance(state, dict) or not all(
        isinstance(k, str) and isinstance(v, Tensor) for k, v in state.items()
    ):
        raise ValueError(f"{source}: the weights are not a mapping of names to tensors")
    check_fit(model, {k: tuple(v.shape) for k, v in state.items()}, source, ignore_prefixes)
    model.load_state_dict(state, strict=False)


def check_fit(
    model: EGTR, shapes: dict[str, tuple[int, ...]], source: str, ignore_prefixes: tuple = ()
) -> None:
    """Raise ValueError listing the missing, unexpected and mis-shaped names of `shapes` (name -> shape)."""
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    missing = sorted(k for k in set(expected) - set(shapes) if not k.startswith(ignore_prefixes))
    unexpected = sorted(set(shapes) - set(expected))
    mismatched = sorted(
        f"{k} {shapes[k]} vs {expected[k]}" for k in set(shapes) & set(expected) if shapes[k] != expected[k]
    )
    problems = []
    for label, keys in (
        ("missing", missing),
        ("unexpected", unexpected),
        ("mis-shaped (file vs model)", mismatched),
    ):
        if keys:
            shown = ", ".join(keys[:10]) + (f", … ({len(keys)} in all)" if len(keys) > 10 else "")
            problems.append(f"{label}: {shown}")
    if problems:
        raise ValueError(f"{source}: weights do not fit the model; " + "; ".join(problems))


# ----------------------------------------------------------------------------- official files
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
    """The model's state dict under official EGTR names (six copies of the shared heads), architecture.md
    §5.9"""
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
    """EGTRConfig from an official (HF DeformableDetrConfig + EGTR extras) config.json."""
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


def _highest_epoch_checkpoint(directory: Path) -> Path:
    candidates = sorted(directory.glob("*.ckpt"))
    if not candidates:
        raise ValueError(f"{directory}: no *.ckpt file")

    def epoch(path: Path) -> int:
        found = re.search(r"epoch=(\d+)", path.name)
        return int(found.group(1)) if found else -1

    return max(candidates, key=lambda p: (epoch(p), p.name))


def _load_official_egtr(checkpoint: Path, config_path: Path, content: dict) -> EGTR:
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


def _load_official_detector(directory: Path) -> EGTR:
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


def _load_trainer_checkpoint(path: Path, content: dict) -> EGTR:
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


def load_model(path: str | Path, map_location: str | torch.device = "cpu") -> EGTR:
    """Load an EGTR model from any supported file or directory (module docstring). Returns it in eval mode."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or directory")
    model = _dispatch(path, map_location)
    return model.to(map_location).eval()


def _dispatch(path: Path, map_location: str | torch.device) -> EGTR:
    if path.is_dir():
        if (path / NATIVE_WEIGHTS).is_file():
            return _load_native(path / NATIVE_WEIGHTS, map_location)
        if (path / "config.json").is_file() and (path / "pytorch_model.bin").is_file():
            return _load_official_detector(path)
        if (path / "config.json").is_file() and (path / "checkpoints").is_dir():
            return _dispatch(_highest_epoch_checkpoint(path / "checkpoints"), map_location)
        raise ValueError(
            f"{path}: not a model directory; expected {NATIVE_WEIGHTS} (this project), config.json + "
            "checkpoints/*.ckpt (official EGTR artifact) or config.json + pytorch_model.bin"
            " (official pretrained detector)"
        )
    if path.suffix == ".safetensors":
        return _load_native(path, map_location)
    if path.name == "pytorch_model.bin":
        return _load_official_detector(path.parent)
    if path.suffix in (".ckpt", ".pt", ".pth"):
        content = torch_load_safely(path)
        if not isinstance(content, dict):
            raise ValueError(f"{path}: expected a checkpoint dictionary, found {type(content).__name__}")
        if "egtr_config" in content:
            return _load_trainer_checkpoint(path, content)
        for config_path in (path.parent.parent / "config.json", path.parent / "config.json"):
            if config_path.is_file():
                return _load_official_egtr(path, config_path, content)
        raise ValueError(
            f"{path}: an official EGTR checkpoint needs its config.json in the artifact directory "
            f"({path.parent.parent / 'config.json'}); pass the unzipped artifact directory"
        )
    raise ValueError(
        f"{path}: unknown model file type {path.suffix!r} (use .safetensors, .ckpt or a directory)"
    )


def load_backbone_file(model: EGTR, path: str | Path) -> None:
    """Load ImageNet ResNet weights (torchvision `.pth` or timm `.safetensors`/`.pth`) into the backbone."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: backbone weights file not found")
    if path.suffix == ".safetensors":
        try:
            state = load_file(str(path))
        except SafetensorError as error:
            raise ValueError(f"{path}: unreadable safetensors file ({error})") from error
    else:
        state = torch_load_safely(path)
        if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
            state = state["state_dict"]
    if not isinstance(state, dict):
        raise ValueError(f"{path}: expected a state dict of ResNet weights")
    load_backbone_weights(model.detector.backbone, state, str(path))
