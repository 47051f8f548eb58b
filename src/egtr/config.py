"""EGTRConfig: every architecture and objective setting, with the official defaults.

Defaults reproduce the official EGTR: the Deformable DETR hub config plus the EGTR extras (architecture.md
§5.1 to §5.5). Presets: `EGTRConfig.visual_genome()`, `.open_images()`, `.small()` (a fast CPU config for
the tests and the demo).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from egtr.dict_round_trip import DictRoundTrip
from egtr.files import read_small_text, write_text

RELATION_FUNCTIONS = ("concat", "sum", "product", "dot")
# official: log(table); log_softmax: the official `use_log_softmax` switch, log_softmax(table); with
# table = counts + eps / (counts.sum(-1) + eps) (see egtr.models.frequency_bias). log_probability:
# this project's option, the normalized log-frequency log(counts / counts.sum(-1)) (floored)
FREQUENCY_BIAS_MODES = ("official", "log_softmax", "log_probability")
# inclusive (minimum, maximum) of every size: far beyond any EGTR model, they stop a crafted config from
# asking for absurd allocations before the memory bound of egtr.checkpoints is even computed
SIZE_LIMITS = {
    "num_labels": (1, 100_000),
    "num_rel_labels": (1, 10_000),
    "num_queries": (1, 10_000),
    "d_model": (1, 8192),
    "encoder_layers": (1, 64),
    "decoder_layers": (1, 64),
    "encoder_attention_heads": (1, 256),
    "decoder_attention_heads": (1, 256),
    "encoder_ffn_dim": (1, 65_536),
    "decoder_ffn_dim": (1, 65_536),
    "num_feature_levels": (1, 16),
    "encoder_n_points": (1, 64),
    "decoder_n_points": (1, 64),
    "backbone_frozen_stages": (0, 5),
    "backbone_width": (1, 1024),
    "denoising_groups": (0, 100),
}
CONFIG_FILE_LIMIT = 1 << 20  # bytes: a config file is a few kB; anything larger is not one


@dataclass
class EGTRConfig(DictRoundTrip):
    # --- labels
    num_labels: int = 150
    num_rel_labels: int = 50
    class_names: list[str] | None = None
    predicate_names: list[str] | None = None

    # --- backbone
    backbone_depth: int = 50
    backbone_norm: str = "frozen"  # frozen (official, for ImageNet weights) | batch (trainable, from scratch)
    backbone_frozen_stages: int = 1  # stem + layer1 frozen as officially; 0 = train everything
    backbone_width: int = 64  # stem/first-stage channels (64 = standard ResNet; narrower for the demo)
    freeze_downsample_batchnorm: bool = False  # official quirk: the 4 downsample BNs stay trainable

    # --- Deformable DETR
    d_model: int = 256
    encoder_layers: int = 6
    decoder_layers: int = 6
    encoder_attention_heads: int = 8
    decoder_attention_heads: int = 8
    encoder_ffn_dim: int = 1024
    decoder_ffn_dim: int = 1024
    dropout: float = 0.1
    attention_dropout: float = 0.0
    activation_dropout: float = 0.0
    num_feature_levels: int = 4
    encoder_n_points: int = 4
    decoder_n_points: int = 4
    num_queries: int = 200
    init_std: float = 0.02
    init_xavier_std: float = 1.0
    # query denoising (DN-DETR; models/denoising.py): groups of noised ground-truth queries in training;
    # 0 = off (official)
    denoising_groups: int = 0
    denoising_box_noise: float = 0.4  # centre shift up to this x half the size, size x [1 -/+ this]
    denoising_label_noise: float = 0.2  # chance that a denoising query's label is replaced at random

    # --- relation head (architecture.md §5.3)
    relation_attention_layers: list[int] | None = None  # decoder layers used as sources; None = all
    relation_use_final_hidden: bool = True  # the final hidden states as the extra source
    relation_function: str = "concat"  # concat | sum | product | dot
    use_connectivity: bool = True
    use_freq_bias: bool = True
    frequency_bias_mode: str = "official"  # official | log_softmax (official switch) | log_probability
    freq_bias_eps: float = 1e-12
    logit_adjustment: bool = False
    logit_adj_tau: float = 0.3

    # --- objective (architecture.md §5.5)
    auxiliary_loss: bool = False
    ce_loss_coefficient: float = 2.0
    bbox_loss_coefficient: float = 5.0
    giou_loss_coefficient: float = 2.0
    rel_loss_coefficient: float = 15.0
    connectivity_loss_coefficient: float = 30.0
    class_cost: float | None = None  # matcher class cost; None = ce_loss_coefficient, as officially
    bbox_cost: float = 5.0
    giou_cost: float = 2.0
    focal_alpha: float = 0.25
    focal_gamma: float = 2.0
    smoothing: float = 1e-14
    rel_sample_negatives: int | None = 80
    rel_sample_nonmatching: int | None = 80
    rel_sample_negatives_largest: bool = True
    rel_sample_nonmatching_largest: bool = True
    # the official EGTR code normalizes the detection losses by each process's own box count (False);
    # DETR averages the count over processes (True). Identical on one process.
    average_num_boxes_across_processes: bool = False

    extra: dict[str, Any] = field(default_factory=dict)  # free-form notes (e.g. dataset name)

    def __post_init__(self) -> None:
        self.validate()

    # ------------------------------------------------------------------ checks
    def validate(self) -> None:
        """Raise ValueError naming the first inconsistent field."""
        for name, (low, high) in SIZE_LIMITS.items():
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
                raise ValueError(f"{name} must be an integer in {low}..{high}, got {value!r}")
        for name in (
            "freq_bias_eps",
            "logit_adj_tau",
            "smoothing",
            "dropout",
            "denoising_box_noise",
            "denoising_label_noise",
        ):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
                raise ValueError(f"{name} must be a finite number, got {value!r}")
        if self.freq_bias_eps <= 0:
            raise ValueError(f"freq_bias_eps must be positive, got {self.freq_bias_eps}")
        if self.backbone_depth not in (18, 34, 50, 101):
            raise ValueError(f"backbone_depth must be 18, 34, 50 or 101, got {self.backbone_depth}")
        if self.backbone_norm not in ("frozen", "batch"):
            raise ValueError(f"backbone_norm must be 'frozen' or 'batch', got {self.backbone_norm!r}")
        if self.relation_function not in RELATION_FUNCTIONS:
            raise ValueError(
                f"relation_function must be one of {RELATION_FUNCTIONS}, got {self.relation_function!r}"
            )
        if self.frequency_bias_mode not in FREQUENCY_BIAS_MODES:
            raise ValueError(
                f"frequency_bias_mode must be one of {FREQUENCY_BIAS_MODES}, got {self.frequency_bias_mode!r}"
            )
        if self.d_model % self.decoder_attention_heads or self.d_model % self.encoder_attention_heads:
            raise ValueError("d_model must be divisible by the number of attention heads")
        if self.num_feature_levels < 1:
            raise ValueError("num_feature_levels must be at least 1")
        for layer in self.relation_layers:
            if not 0 <= layer < self.decoder_layers:
                raise ValueError(
                    f"relation_attention_layers holds {layer}, outside 0..{self.decoder_layers - 1}"
                )
        if self.num_relation_sources == 0:
            raise ValueError("the relation head needs at least one source (attention layers or final hidden)")
        for name in ("denoising_box_noise", "denoising_label_noise"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")
        if self.denoising_groups and self.d_model % 4:
            raise ValueError(f"query denoising needs d_model divisible by 4, got {self.d_model}")
        if self.smoothing < 0 or self.smoothing >= 1:
            raise ValueError(f"smoothing must be in [0, 1), got {self.smoothing}")
        for name, names, count in (
            ("class_names", self.class_names, self.num_labels),
            ("predicate_names", self.predicate_names, self.num_rel_labels),
        ):
            if names is not None and len(names) != count:
                raise ValueError(f"{name} has {len(names)} entries but the config says {count}")

    @property
    def relation_layers(self) -> list[int]:
        """Decoder layer indices (0-based) whose self-attention q/k feed the relation head."""
        if self.relation_attention_layers is None:
            return list(range(self.decoder_layers))
        return list(self.relation_attention_layers)

    @property
    def num_relation_sources(self) -> int:
        return len(self.relation_layers) + int(self.relation_use_final_hidden)

    @property
    def matching_class_cost(self) -> float:
        """The matcher's class cost: `class_cost`, or `ce_loss_coefficient` when unset (official)."""
        return self.ce_loss_coefficient if self.class_cost is None else self.class_cost

    # ------------------------------------------------------------------ presets
    @classmethod
    def visual_genome(cls, **overrides: Any) -> EGTRConfig:
        """Visual Genome 150 objects / 50 predicates, the official VG setting."""
        return cls(**{"num_labels": 150, "num_rel_labels": 50, **overrides})

    @classmethod
    def open_images(cls, **overrides: Any) -> EGTRConfig:
        """Open Images V6 601 objects / 30 predicates (connectivity 90, random non-matching samples)."""
        defaults = {
            "num_labels": 601,
            "num_rel_labels": 30,
            "connectivity_loss_coefficient": 90.0,
            "rel_sample_nonmatching_largest": False,
        }
        return cls(**{**defaults, **overrides})

    @classmethod
    def small(cls, **overrides: Any) -> EGTRConfig:
        """A small, fast config for CPU tests and the synthetic demo (ResNet-18, d=128, 3+3 layers)."""
        defaults = {
            "num_labels": 12,
            "num_rel_labels": 6,
            "backbone_depth": 18,
            "d_model": 128,
            "encoder_layers": 3,
            "decoder_layers": 3,
            "encoder_attention_heads": 4,
            "decoder_attention_heads": 4,
            "encoder_ffn_dim": 256,
            "decoder_ffn_dim": 256,
            "num_feature_levels": 3,
            "encoder_n_points": 2,
            "decoder_n_points": 2,
            "num_queries": 30,
        }
        return cls(**{**defaults, **overrides})

    PRESETS = ("visual_genome", "open_images", "small")

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> EGTRConfig:
        key = name.replace("-", "_")
        if key not in cls.PRESETS:
            raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(cls.PRESETS)}")
        return getattr(cls, key)(**overrides)

    # ------------------------------------------------------------------ serialization
    def to_json(self, path: str | Path | None = None) -> str:
        text = json.dumps(self.to_dict(), indent=2)
        if path is not None:
            write_text(path, text + "\n")
        return text

    @classmethod
    def from_json(cls, text: str, source: str = "config") -> EGTRConfig:
        """A config from JSON text (a JSON object). Text only: a path is not JSON and is an error, so a
        value inside a file can never make this read another file (use `from_file` for a path)."""
        if not isinstance(text, str):
            raise ValueError(f"{source}: expected JSON text, got {type(text).__name__}")
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(f"{source}: not valid JSON ({error})") from error
        if not isinstance(data, dict):
            raise ValueError(f"{source}: expected a JSON object, got {type(data).__name__}")
        try:
            return cls.from_dict(data)
        except (TypeError, ValueError) as error:
            raise ValueError(f"{source}: {error}") from error

    @classmethod
    def from_file(cls, path: str | Path) -> EGTRConfig:
        """A config from a JSON file (at most CONFIG_FILE_LIMIT bytes, a regular file)."""
        return cls.from_json(read_small_text(path, CONFIG_FILE_LIMIT), str(path))
