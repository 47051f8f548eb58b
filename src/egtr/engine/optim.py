"""AdamW and its parameter groups by name, as officially (architecture.md §5.7)."""

from __future__ import annotations

import torch
from torch import nn

BACKBONE_LIKE = ("backbone", "reference_points", "sampling_offsets")


def parameter_groups(
    model: nn.Module,
    lr: float,
    lr_backbone: float,
    lr_initialized: float,
    initialized_prefixes: tuple[str, ...],
) -> list[dict]:
    """Three groups of the trainable parameters of `model`: newly initialized (names starting with one of
    `initialized_prefixes`) at `lr_initialized`; names containing backbone | reference_points |
    sampling_offsets at `lr_backbone`; everything else at `lr`. Empty groups are dropped."""
    groups = {"initialized": [], "backbone": [], "main": []}
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            continue
        if initialized_prefixes and name.startswith(initialized_prefixes):
            groups["initialized"].append(parameter)
        elif any(word in name for word in BACKBONE_LIKE):
            groups["backbone"].append(parameter)
        else:
            groups["main"].append(parameter)
    rates = {"initialized": lr_initialized, "backbone": lr_backbone, "main": lr}
    return [{"params": params, "lr": rates[name], "name": name} for name, params in groups.items() if params]


def adamw(groups: list[dict], weight_decay: float) -> torch.optim.AdamW:
    """AdamW over `groups`. PyTorch's plain (foreach) kernel: the fused one is faster per step
    (BENCHMARKS.md, "Training throughput", has the numbers) but a run resumed from a checkpoint then ends
    up to 1e-5 away from the uninterrupted run, and Lightning refuses it with gradient clipping under
    mixed precision."""
    return torch.optim.AdamW(groups, weight_decay=weight_decay)
