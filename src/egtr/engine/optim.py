"""AdamW and its parameter groups by name, as officially (spec §3.1, §3.2)."""

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


def adamw(groups: list[dict], weight_decay: float, loss_scaling: bool = False) -> torch.optim.AdamW:
    """AdamW over `groups`, with PyTorch's fused kernel where every parameter is a float tensor on a CPU or
    CUDA device (one kernel per step instead of several per parameter; the same update up to rounding).
    With `loss_scaling` (fp16 training) the plain kernel: a fused AdamW unscales gradients itself, which
    Lightning refuses together with gradient clipping."""
    parameters = [p for group in groups for p in group["params"]]
    fused = not loss_scaling and all(
        p.device.type in ("cpu", "cuda") and p.is_floating_point() for p in parameters
    )
    return torch.optim.AdamW(groups, weight_decay=weight_decay, fused=fused or None)
