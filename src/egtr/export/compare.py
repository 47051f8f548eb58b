"""What a reduced-precision model changes: the raw outputs and the top-100 triplets against a reference.

`compare_backends(reference, candidate, images)` runs both backends on each image (batch 1, as prepared
for prediction) and reports, over the images, the largest absolute difference of every raw output and the
top-100 triplet overlap: |top-100 of the reference ∩ top-100 of the candidate| / 100, a triplet being
(subject query, predicate, object query) of the graph-constrained list of the Visual Genome
post-processing (architecture.md §5.6). `egtr export --int8` / `--precision bf16` write it to
`export.json` for the calibration images; `benchmarks/precision_accuracy.py` uses it too.

The relation logits include the frequency bias of the pair's argmax classes, so a query whose class flips
between two near-equal logits changes them by the difference of two table rows (up to about 30): their
largest difference is reported as measured, and the overlap says what it costs.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from egtr.export.check import output_differences
from egtr.export.int8 import CalibrationImage
from egtr.inference.backend import Backend, RawOutputs
from egtr.inference.postprocess import PostprocessOptions, postprocess

TOP = 100


def top_triplets(
    raw: RawOutputs, backend: Backend, height: int, width: int, top: int = TOP
) -> set[tuple[int, int, int]]:
    """The best `top` (subject query, predicate, object query) of image 0 of `raw` (graph constraint,
    Visual Genome post-processing, scores as `backend`'s config computes them)."""
    scored = raw.scored(backend.config, backend.rel_dist)
    (prediction,) = postprocess(scored, torch.tensor([[height, width]]), PostprocessOptions.visual_genome())
    pairs, predicates = prediction["rel_pairs"][:top], prediction["rel_scores"][:top].argmax(-1)
    return {(int(s), int(p), int(o)) for (s, o), p in zip(pairs.tolist(), predicates.tolist())}


def compare_backends(
    reference: Backend, candidate: Backend, images: Sequence[CalibrationImage], top: int = TOP
) -> dict:
    """{"images", "top100_overlap": {"mean", "min"}, "max_abs_difference": {output: value}} of `candidate`
    against `reference` on `images` (module docstring)."""
    overlaps: list[float] = []
    largest: dict[str, float] = {}
    with torch.inference_mode():
        for image in images:
            pixel_values = image.pixel_values[None]
            pixel_mask = torch.ones(1, *pixel_values.shape[2:], dtype=torch.bool)
            expected = reference.run(pixel_values, pixel_mask)
            actual = candidate.run(pixel_values, pixel_mask)
            for name, value in output_differences(expected, actual).items():
                largest[name] = max(largest.get(name, 0.0), value)
            height, width = image.size
            wanted = top_triplets(expected, reference, height, width, top)
            got = top_triplets(actual, candidate, height, width, top)
            overlaps.append(len(wanted & got) / max(len(wanted), 1))
    return {
        "images": len(images),
        f"top{top}_overlap": {"mean": sum(overlaps) / len(overlaps), "min": min(overlaps)},
        "max_abs_difference": largest,
    }
