"""In-place arithmetic that autograd does not turn into copies of whole tensors.

The model writes many results over fresh outputs (ReLU after a linear layer, a residual sum, masking the
values) to hold fewer tensors. On a view under autograd that backfires: a linear layer with a bias returns
a view of its 2-D product for a 3-D or larger input, and an in-place op on a view makes the backward rebuild
the view's base (CopySlices: the whole gradient cloned, a zeroed tensor of its size, a strided scatter). In
the demo's training step that was 10-27% of the step in glibc's default heap mode (nothing measurable in the
mode the CLI runs in; BENCHMARKS.md, "The demo"). So each helper modifies its first argument in place unless
autograd records the op on a view, and returns a new tensor then: the same numbers either way.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def rebuilds_a_view(x: Tensor, *others: Tensor) -> bool:
    """Whether an in-place op on `x` (with `others`) would be recorded by autograd on a view."""
    if not (torch.is_grad_enabled() and x._is_view()):
        return False
    return x.requires_grad or any(other.requires_grad for other in others)


def relu_(x: Tensor) -> Tensor:
    """ReLU(x), written over x where that is free."""
    return F.relu(x, inplace=not rebuilds_a_view(x))


def add_(x: Tensor, y: Tensor) -> Tensor:
    """x + y, written over x where that is free (x must have the sum's shape and dtype)."""
    return x + y if rebuilds_a_view(x, y) else x.add_(y)


def masked_fill_(x: Tensor, mask: Tensor, value: float) -> Tensor:
    """x with `value` where `mask`, written over x where that is free."""
    return x.masked_fill(mask, value) if rebuilds_a_view(x) else x.masked_fill_(mask, value)
