"""Frequency bias: a per (subject class, object class) prior on predicate logits (architecture.md §5.4).

From training triplet counts fg [C+1, C+1, R] the official code builds, in float64 and then float32,

    table = fg + eps / (fg.sum(-1) + eps)          (operator precedence: counts plus a tiny constant)

and stores `log(table)` (mode `official`) or, with its `use_log_softmax` switch, `log_softmax(table)` over
the predicates of those raw values (mode `log_softmax`). With `official`, seen triplets get ≈ log(count),
unseen predicates of a seen class pair ≈ log(eps / total), never-seen class pairs 0. This project's
option `log_probability` is the normalized log-frequency log(fg / fg.sum(-1)) (unseen predicates floored
at ≈ log(eps / total), never-seen pairs uniform -log R): `log_softmax(log(table))`.

`rel_dist` = fg.sum((0, 1)) / (fg.sum() + eps) [R] is the predicate prior of post-hoc logit adjustment.
Both tables are non-trainable Parameters, as officially, so they travel in state dicts and count in
`parameters()`; the model always carries them, also when the bias is switched off.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def frequency_tables(fg_matrix: Tensor, mode: str = "official", eps: float = 1e-12) -> tuple[Tensor, Tensor]:
    """(triplet_dist [C+1, C+1, R], rel_dist [R]), float32, from counts fg_matrix [C+1, C+1, R]."""
    counts = fg_matrix.to(torch.float64)
    rel_dist = (counts.sum((0, 1)) / (counts.sum() + eps)).to(torch.float32)
    table = (counts + eps / (counts.sum(-1, keepdim=True) + eps)).to(torch.float32)
    if mode == "official":
        return table.log(), rel_dist
    if mode == "log_softmax":
        return table.log_softmax(-1), rel_dist
    if mode == "log_probability":
        return table.log().log_softmax(-1), rel_dist
    raise ValueError(f"unknown frequency bias mode {mode!r}")


class FrequencyBias(nn.Module):
    def __init__(
        self, num_classes: int, num_predicates: int, mode: str = "official", eps: float = 1e-12
    ) -> None:
        super().__init__()
        self.mode, self.eps = mode, eps
        # registration order as in official checkpoints: rel_dist, then triplet_dist
        self.rel_dist = nn.Parameter(torch.zeros(num_predicates), requires_grad=False)
        self.triplet_dist = nn.Parameter(
            torch.zeros(num_classes + 1, num_classes + 1, num_predicates), requires_grad=False
        )

    @torch.no_grad()
    def set_statistics(self, fg_matrix: Tensor) -> None:
        """Fill both tables from triplet counts fg_matrix [C+1, C+1, R] (subject, object class, predicate)."""
        expected = tuple(self.triplet_dist.shape)
        if tuple(fg_matrix.shape) != expected:
            raise ValueError(f"fg_matrix has shape {tuple(fg_matrix.shape)}, expected {expected}")
        triplet_dist, rel_dist = frequency_tables(fg_matrix, self.mode, self.eps)
        self.rel_dist.copy_(rel_dist)
        self.triplet_dist.copy_(triplet_dist)

    def forward(self, class_logits: Tensor) -> Tensor:
        """class_logits [B,N,C] -> bias [B,N,N,R] for pairs (subject i, object j) of argmax classes."""
        classes = class_logits.argmax(-1)
        return self.triplet_dist[classes[:, :, None], classes[:, None, :]]


def log_prior(rel_dist: Tensor, eps: float) -> Tensor:
    """rel_dist [R] (predicate frequencies) -> [R] log(max(rel_dist, eps)), for post-hoc logit adjustment."""
    return rel_dist.clamp(min=eps).log()
