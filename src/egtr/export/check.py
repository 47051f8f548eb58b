"""Exported vs PyTorch: the largest absolute difference of every raw output on the same batch.

`egtr export` runs this on a batch of another size and count than the one the exporter traced (3 images
of 72 x 104, two of them padded), so a size baked into the graph shows up as a large difference.
"""

from __future__ import annotations

import torch
from torch import Tensor

from egtr.inference.backend import Backend, RawOutputs, TorchBackend
from egtr.models.egtr import EGTR

TOLERANCE = 1e-4  # logits, boxes, relation and connectivity logits
CHECK_BATCH, CHECK_HEIGHT, CHECK_WIDTH = 3, 72, 104


def check_inputs() -> tuple[Tensor, Tensor]:
    """3 random images of 72 x 104; the second padded below 56 rows, the third right of 80 columns."""
    generator = torch.Generator().manual_seed(1)
    pixel_values = torch.randn(CHECK_BATCH, 3, CHECK_HEIGHT, CHECK_WIDTH, generator=generator)
    pixel_mask = torch.ones(CHECK_BATCH, CHECK_HEIGHT, CHECK_WIDTH, dtype=torch.bool)
    pixel_mask[1, 56:] = False
    pixel_mask[2, :, 80:] = False
    return pixel_values * pixel_mask[:, None], pixel_mask


def output_differences(reference: RawOutputs, other: RawOutputs) -> dict[str, float]:
    """{output name: max |reference - other|} over the raw outputs both have."""
    differences = {}
    for name in ("logits", "pred_boxes", "rel_logits", "connectivity_logits"):
        expected, actual = getattr(reference, name), getattr(other, name)
        if expected is None or actual is None:
            if (expected is None) != (actual is None):
                raise ValueError(f"{name}: returned by one backend only")
            continue
        differences[name] = float((expected.float().cpu() - actual.float().cpu()).abs().max())
    return differences


def compare_with_torch(model: EGTR, backend: Backend) -> dict[str, float]:
    """Max abs differences of `backend`'s raw outputs from the PyTorch fp32 model's on `check_inputs()`."""
    pixel_values, pixel_mask = check_inputs()
    reference = TorchBackend(model, "cpu").run(pixel_values, pixel_mask)
    return output_differences(reference, backend.run(pixel_values, pixel_mask))
