"""Frequency bias: a per (subject class, object class) prior on predicate logits (spec §1.7).

Official formula (default): triplet_dist = log(fg + eps / (fg.sum(-1) + eps)), i.e. the log of raw counts
plus a tiny constant (operator precedence of the official code): seen triplets get ≈ log(count), unseen
predicates of a seen class pair ≈ log(eps / total), never-seen class pairs 0. Option `log_softmax`
normalizes that over predicates (a log-probability). Both tables are non-trainable Parameters, as
officially, so they travel in state dicts and count in `parameters()`.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


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
        counts = fg_matrix.to(torch.float64)
        self.rel_dist.copy_(counts.sum((0, 1)) / (counts.sum() + self.eps))
        table = torch.log(counts + self.eps / (counts.sum(-1, keepdim=True) + self.eps))
        if self.mode == "log_softmax":
            table = table.log_softmax(-1)
        self.triplet_dist.copy_(table)

    def forward(self, class_logits: Tensor) -> Tensor:
        """class_logits [B,N,C] -> bias [B,N,N,R] for pairs (subject i, object j) of argmax classes."""
        classes = class_logits.argmax(-1)
        return self.triplet_dist[classes[:, :, None], classes[:, None, :]]


def log_prior(rel_dist: Tensor, eps: float) -> Tensor:
    """rel_dist [R] (predicate frequencies) -> [R] log(max(rel_dist, eps)), for post-hoc logit adjustment."""
    return rel_dist.clamp(min=eps).log()
