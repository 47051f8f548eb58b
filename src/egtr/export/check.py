"""Exported vs PyTorch: the largest absolute difference of every raw output on the same batch.

`egtr export` runs this on a batch of another size and count than the one the exporter traced (3 images
of 72 x 104, two of them padded), so a size baked into the graph shows up as a large difference. An INT8
export is checked on its calibration images instead (`calibration_inputs`, same padding): its activation
ranges were fitted to images, and random noise drives them past those ranges, so a noise batch measures the
clipping of inputs no camera makes rather than the export (measured on the AVX2-only AMD EPYC, the demo
model's INT8 exports: class logits off by 16-20% of their scale and connectivity logits by 20-25% on noise,
1.7-1.8% and 0.9-1.3% on its calibration images). Its fp32 graph has passed the noise batch before it was
quantized.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from egtr.export.int8 import CalibrationImage
from egtr.inference.backend import Backend, RawOutputs, TorchBackend
from egtr.models.egtr import EGTR

TOLERANCE = 1e-4  # fp32: max abs difference of logits, boxes, relation and connectivity logits
# reduced precision (bf16, fp16, INT8 exports): max abs difference as a share of the output's largest
# magnitude on the check batch, that magnitude taken as at least 1 (see `check_backend`)
REDUCED_SHARE = 0.1
CHECK_BATCH, CHECK_HEIGHT, CHECK_WIDTH = 3, 72, 104


def check_inputs() -> tuple[Tensor, Tensor]:
    """3 random images of 72 x 104; the second padded below 56 rows, the third right of 80 columns."""
    generator = torch.Generator().manual_seed(1)
    pixel_values = torch.randn(CHECK_BATCH, 3, CHECK_HEIGHT, CHECK_WIDTH, generator=generator)
    pixel_mask = torch.ones(CHECK_BATCH, CHECK_HEIGHT, CHECK_WIDTH, dtype=torch.bool)
    pixel_mask[1, 56:] = False
    pixel_mask[2, :, 80:] = False
    return pixel_values * pixel_mask[:, None], pixel_mask


def calibration_inputs(images: Sequence[CalibrationImage]) -> tuple[Tensor, Tensor]:
    """The first CHECK_BATCH of `images` as one padded batch [b,3,H,W] / [b,H,W] (H, W: their largest
    sides), padded as `check_inputs` pads: the second image cut below 3/4 of its rows, the third right of
    3/4 of its columns, the padding zero."""
    chosen = [image.pixel_values for image in images[:CHECK_BATCH]]
    if not chosen:
        raise ValueError("no calibration images to check on")
    height, width = max(p.shape[1] for p in chosen), max(p.shape[2] for p in chosen)
    pixel_values = torch.zeros(len(chosen), 3, height, width)
    pixel_mask = torch.zeros(len(chosen), height, width, dtype=torch.bool)
    for index, pixels in enumerate(chosen):
        rows, columns = pixels.shape[1], pixels.shape[2]
        if index == 1:
            rows = max(1, rows * 3 // 4)
        if index == 2:
            columns = max(1, columns * 3 // 4)
        pixel_values[index, :, :rows, :columns] = pixels[:, :rows, :columns]
        pixel_mask[index, :rows, :columns] = True
    return pixel_values, pixel_mask


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


def relation_head_logits(model: EGTR, raw: RawOutputs) -> Tensor:
    """rel_logits without the frequency bias of the pair's argmax classes [B,N,N,R]: what the relation head
    itself computed. (A query whose class flips between two near-equal logits changes its bias row by up to
    about 30, which says nothing about the export's arithmetic.)"""
    if not model.config.use_freq_bias:
        return raw.rel_logits.float()
    with torch.inference_mode():
        bias = model.frequency_bias(raw.logits.float().cpu())
    return raw.rel_logits.float().cpu() - bias


def check_backend(model: EGTR, backend: Backend, images: Sequence[CalibrationImage] | None = None) -> dict:
    """`backend` against the PyTorch fp32 model on `check_inputs()` (on `calibration_inputs(images)` when
    `images` are given: an INT8 export's calibration images, module docstring), judged by its export's
    precision (the metadata's label: fp32, bf16, fp16 or int8):

    - fp32: every raw output within TOLERANCE;
    - reduced precision: every raw output within REDUCED_SHARE of its largest magnitude in the PyTorch
      outputs, a magnitude below 1 counting as 1 (logits near 0: an error of 0.1 in a logit moves its
      probability by at most 2.5 points; boxes are fractions of the image), the relation logits compared
      without the frequency bias (`relation_head_logits`; the largest difference with it is reported too).
      bf16 keeps 8 significant bits and INT8 rounds each quantized tensor to 1/255 of its range, which
      after the 20-odd quantized layers of the model moves the outputs by a few percent of their scale
      (measured: BENCHMARKS.md); an export that is broken (a size baked into the graph, wrong weights, a
      misplaced quantizer) moves them by their whole scale.

    Returns {"precision", "inputs": "noise" or "calibration", "max_abs_difference", "tolerance",
    "failed": "" or what exceeded its tolerance}.
    """
    label = backend.metadata.label if hasattr(backend, "metadata") else backend.precision
    pixel_values, pixel_mask = check_inputs() if images is None else calibration_inputs(images)
    reference = TorchBackend(model, "cpu").run(pixel_values, pixel_mask)
    candidate = backend.run(pixel_values, pixel_mask)
    differences = output_differences(reference, candidate)
    if label == "fp32":
        allowed = dict.fromkeys(differences, TOLERANCE)
        judged = differences
    else:
        head = float(
            (relation_head_logits(model, reference) - relation_head_logits(model, candidate)).abs().max()
        )
        judged = {**differences, "rel_logits": head}
        scale = {name: float(getattr(reference, name).float().abs().max()) for name in differences}
        scale["rel_logits"] = float(relation_head_logits(model, reference).abs().max())
        allowed = {name: REDUCED_SHARE * max(1.0, scale[name]) for name in differences}
        differences = {**differences, "rel_logits_without_frequency_bias": head}
    failed = [
        f"{name} by {judged[name]:.3g}, tolerance {allowed[name]:.3g}"
        for name in allowed
        if not judged[name] <= allowed[name]
    ]
    return {
        "precision": label,
        "inputs": "noise" if images is None else "calibration",
        "max_abs_difference": differences,
        "tolerance": allowed,
        "failed": "; ".join(failed),
    }
