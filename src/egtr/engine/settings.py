"""Training settings: one dataclass, official presets per dataset and phase, overrides from files and flags.

Phases (architecture.md §5.7), in recipe order: `detector` (Deformable DETR pre-training, auxiliary losses
on, the DETR augmentation with RandomSizeCrop), `detector_finetune` (the same at x0.1 learning rates from
the best `detector` model), `egtr` (relation head trained from the pre-trained detector, three learning
rates, no crop), `finetune` (all rates x0.1 from the best `egtr` model). Datasets: `visual_genome`,
`open_images` (official hyper-parameters) and `synthetic` (the small CPU config of the demo).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from egtr.dict_round_trip import DictRoundTrip
from egtr.files import write_text
from egtr.sizes import DETECTOR_CROP, EVAL_MAX_SIZE, EVAL_SIZE, MID_SCALES, TRAIN_MAX_SIZE, TRAIN_SCALES

PHASES = ("detector", "detector_finetune", "egtr", "finetune")
DETECTOR_PHASES = ("detector", "detector_finetune")  # train the detector only
FINETUNE_PHASES = ("detector_finetune", "finetune")  # start from the whole model of the previous phase
DATASETS = ("visual_genome", "open_images", "synthetic")
PRECISIONS = ("32-true", "16-mixed", "bf16-mixed")
# the learning-rate schedules of engine/schedule.py; constant is the official one
LR_SCHEDULES = ("constant", "cosine", "step")
LR_DROP_AT = 0.8  # share of the budget after which the "step" schedule multiplies the rates by LR_DROP_FACTOR
LR_DROP_FACTOR = 0.1
# how torch.optim.AdamW computes its update (engine/optim.py): "default" lets PyTorch choose (a loop over
# the tensors on the CPU, foreach on CUDA; the official presets), "for-loop" one tensor at a time,
# "foreach" batched over the tensors of a group, "fused" one fused kernel per group
ADAMW_IMPLEMENTATIONS = ("default", "for-loop", "foreach", "fused")


@dataclass
class TrainSettings(DictRoundTrip):
    phase: str = "egtr"
    dataset: str = "visual_genome"  # preset family: visual_genome | open_images | synthetic
    data: str | None = None  # dataset directory in any supported layout (None: synthetic world on the fly)
    out: str = "egtr-output/train"
    init_from: str | None = None  # detector (egtr phase) or egtr checkpoint (finetune phase) to start from
    backbone_weights: str | None = None  # ImageNet ResNet weights (detector phase)
    resume: bool = True  # continue from out/checkpoints/last.ckpt when it exists

    # optimization (architecture.md §5.7)
    lr: float = 2e-6
    lr_backbone: float = 2e-7  # names with backbone | reference_points | sampling_offsets
    lr_initialized: float = 2e-4  # newly initialized relation head (egtr and finetune phases)
    weight_decay: float = 1e-4
    gradient_clip: float = 0.1
    batch_size: int = 4  # per device
    accumulate: int = 2
    effective_batch: int | None = (
        None  # when set, accumulate = effective_batch / (batch_size x devices x nodes), exactly
    )
    allow_approximate_batch: bool = False  # round the accumulation instead of refusing an inexact one
    max_epochs: int = 50
    max_steps: int = -1
    max_minutes: float | None = None  # stop after this wall-clock time (then test on the best checkpoint)
    patience: int = 15  # early stopping on the validation loss
    lr_schedule: str = "constant"  # constant (official) | cosine | step: one late drop (engine/schedule.py)
    warmup_steps: int = 0  # linear warm-up of every rate over the first optimizer steps (0: none)
    adamw_implementation: str = (
        "default"  # AdamW kernel: default | for-loop | foreach | fused (engine/optim.py)
    )
    precision: str = "32-true"
    seed: int = 42

    # hardware
    accelerator: str = "auto"
    devices: int | str = "auto"
    num_nodes: int = 1
    strategy: str = "auto"
    num_workers: int = 4

    # data and evaluation
    train_scales: list[int] = field(default_factory=lambda: list(TRAIN_SCALES))
    train_mid_scales: list[int] = field(default_factory=lambda: list(MID_SCALES))
    train_crop: list[int] = field(default_factory=list)  # [min, max] RandomSizeCrop sides; [] = no crop
    train_max_size: int = TRAIN_MAX_SIZE
    flip_prob: float = 0.5
    eval_size: int = EVAL_SIZE
    eval_max_size: int = EVAL_MAX_SIZE
    protocol: str = "vg"  # vg | oi evaluation protocol
    metrics_every: int = 1  # validation metrics (R@K, mR@K, AP50) every N epochs; 0 = loss only
    val_check_interval: float | int = 1.0  # Lightning: fraction of an epoch or a number of steps
    log_every: int = 50
    max_val_images: int | None = None
    filter_multiple_rels: bool = False  # one random predicate per pair at every access (OI official)

    # synthetic world (dataset "synthetic" without --data)
    synthetic_images: int = 2000
    synthetic_val_images: int = 100
    synthetic_size: int = 160
    synthetic_seed: int = 0

    model: dict[str, Any] = field(default_factory=dict)  # EGTRConfig overrides

    def __post_init__(self) -> None:
        if self.phase not in PHASES:
            raise ValueError(f"phase must be one of {PHASES}, got {self.phase!r}")
        if self.dataset not in DATASETS:
            raise ValueError(f"dataset must be one of {DATASETS}, got {self.dataset!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"lr_schedule must be one of {LR_SCHEDULES}, got {self.lr_schedule!r}")
        if self.warmup_steps < 0:
            raise ValueError(f"warmup_steps must be >= 0, got {self.warmup_steps}")
        if self.adamw_implementation not in ADAMW_IMPLEMENTATIONS:
            raise ValueError(
                f"adamw_implementation must be one of {ADAMW_IMPLEMENTATIONS}, "
                f"got {self.adamw_implementation!r}"
            )
        if self.adamw_implementation == "fused" and self.precision != "32-true" and self.gradient_clip:
            raise ValueError(
                "adamw_implementation 'fused' unscales gradients inside its step, so Lightning cannot clip "
                f"them under precision {self.precision}: use 'foreach', or precision 32-true"
            )
        if self.protocol not in ("vg", "oi"):
            raise ValueError(f"protocol must be vg or oi, got {self.protocol!r}")
        if self.batch_size < 1 or self.accumulate < 1:
            raise ValueError("batch_size and accumulate must be at least 1")
        if self.effective_batch is not None and self.effective_batch < 1:
            raise ValueError("effective_batch must be at least 1")
        if self.train_crop and not (
            len(self.train_crop) == 2 and 0 < self.train_crop[0] <= self.train_crop[1]
        ):
            raise ValueError(
                f"train_crop must be [] or [min, max] with 0 < min <= max, got {self.train_crop}"
            )

    def accumulation(self, devices: int) -> int:
        """Gradient accumulation steps for `devices` devices per node (from effective_batch when set).

        An effective batch that batch_size x devices x nodes does not divide is an error naming the
        numbers, unless `allow_approximate_batch` (then the nearest accumulation, at least 1)."""
        if self.effective_batch is None:
            return self.accumulate
        per_step = self.batch_size * devices * self.num_nodes
        steps, remainder = divmod(self.effective_batch, per_step)
        if remainder or steps == 0:
            if not self.allow_approximate_batch:
                raise ValueError(
                    f"effective batch {self.effective_batch} is not a multiple of batch_size "
                    f"{self.batch_size} x {devices} devices x {self.num_nodes} nodes = {per_step} images per "
                    "step; choose a batch size that divides it, or pass --allow-approximate-batch to "
                    f"accumulate {max(1, round(self.effective_batch / per_step))} steps "
                    f"({max(1, round(self.effective_batch / per_step)) * per_step} images)"
                )
            return max(1, round(self.effective_batch / per_step))
        return steps

    def save(self, path: Path) -> None:
        write_text(path, json.dumps(self.to_dict(), indent=2) + "\n")


# Official hyper-parameters (architecture.md §5.7); each fine-tune = its phase with every rate x0.1.
_PHASE_PRESETS: dict[str, dict[str, Any]] = {
    "detector": dict(
        lr=1e-4,
        lr_backbone=1e-5,
        lr_initialized=1e-4,
        batch_size=4,
        accumulate=1,
        effective_batch=32,
        max_epochs=150,
        patience=15,
        train_crop=list(DETECTOR_CROP),
        model={"auxiliary_loss": True},
    ),
    "egtr": dict(
        lr=2e-6,
        lr_backbone=2e-7,
        lr_initialized=2e-4,
        batch_size=4,
        accumulate=2,
        effective_batch=64,
        max_epochs=50,
        patience=15,
        model={"auxiliary_loss": False},
    ),
    "finetune": dict(
        lr=2e-7,
        lr_backbone=2e-8,
        lr_initialized=2e-5,
        batch_size=4,
        accumulate=2,
        effective_batch=64,
        max_epochs=25,
        patience=15,
        model={"auxiliary_loss": False},
    ),
}

_PHASE_PRESETS["detector_finetune"] = {
    **_PHASE_PRESETS["detector"],
    "lr": 1e-5,
    "lr_backbone": 1e-6,
    "lr_initialized": 1e-5,
    "max_epochs": 50,
}

_DATASET_PRESETS: dict[str, dict[str, Any]] = {
    "visual_genome": dict(protocol="vg"),
    "open_images": dict(protocol="oi", filter_multiple_rels=True),
    # the demo's small CPU setting: from scratch, trainable BatchNorm, small images, no flip (the synthetic
    # predicates include "left of"), no second augmentation branch (so no crop), higher learning rates,
    # steps instead of epochs
    "synthetic": dict(
        protocol="vg",
        flip_prob=0.0,
        train_scales=[144, 160, 176],
        train_mid_scales=[],
        train_crop=[],
        train_max_size=240,
        eval_size=160,
        eval_max_size=240,
        num_workers=1,
        accelerator="cpu",
        devices=1,
        accumulate=1,
        effective_batch=None,
        batch_size=4,
        log_every=10,
    ),
}

_SYNTHETIC_PHASES: dict[str, dict[str, Any]] = {
    "detector": dict(
        lr=4e-4,
        lr_backbone=4e-4,
        lr_initialized=4e-4,
        max_epochs=1000,
        patience=1000,
        model={"auxiliary_loss": True},
    ),
    "egtr": dict(
        lr=1e-4,
        lr_backbone=1e-4,
        lr_initialized=1e-3,
        max_epochs=1000,
        patience=1000,
        model={"auxiliary_loss": False},
    ),
    "finetune": dict(
        lr=1e-5,
        lr_backbone=1e-5,
        lr_initialized=1e-4,
        max_epochs=1000,
        patience=1000,
        model={"auxiliary_loss": False},
    ),
}


_SYNTHETIC_PHASES["detector_finetune"] = {
    **_SYNTHETIC_PHASES["detector"],
    "lr": 4e-5,
    "lr_backbone": 4e-5,
    "lr_initialized": 4e-5,
}


def preset(dataset: str, phase: str) -> TrainSettings:
    """The settings of a dataset family and phase, before any override."""
    if dataset not in DATASETS:
        raise ValueError(f"dataset must be one of {DATASETS}, got {dataset!r}")
    if phase not in PHASES:
        raise ValueError(f"phase must be one of {PHASES}, got {phase!r}")
    values: dict[str, Any] = {"dataset": dataset, "phase": phase, **_PHASE_PRESETS[phase]}
    values.update(_DATASET_PRESETS[dataset])
    if dataset == "synthetic":
        values.update(_SYNTHETIC_PHASES[phase])
    return TrainSettings(**values)


def merge(settings: TrainSettings, overrides: dict[str, Any]) -> TrainSettings:
    """Apply overrides; `model` overrides are merged key by key into the preset's."""
    overrides = dict(overrides)
    model = {**settings.model, **overrides.pop("model", {})}
    return settings.replace(**overrides, model=model)
