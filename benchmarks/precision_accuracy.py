"""What reduced precision costs in accuracy: bf16/fp16 autocast against fp32 on one photo.

Usage: python benchmarks/precision_accuracy.py [--image PHOTO] [--checkpoint MODEL | --preset visual_genome]
           [--size 600 1000 --size 800 1333] [--precision bf16 fp16] [--seed 0] [--json]

The photo defaults to matplotlib's bundled sample photo (`sample_data/grace_hopper.jpg`, a 512x600 portrait;
no photo is downloaded). Without `--checkpoint` the model has random weights (seed `--seed`): the numbers then
measure numerical stability, not the accuracy of a trained model. For each size (shorter side, longer-side
limit) the image is resized and normalized as for prediction, and for each precision the script reports the
largest absolute difference from fp32 of the class logits, the boxes, the relation logits and the
connectivity logits, and the overlap of the top-100 triplets: |fp32 top-100 ∩ reduced top-100| / 100,
where a triplet is (subject query, predicate, object query) of the graph-constrained list
(`egtr.inference.postprocess`, Visual Genome options), and the forward time.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from egtr.config import EGTRConfig
from egtr.data.images import load_rgb
from egtr.data.transforms import normalize_image, resized_shape
from egtr.hardware import describe
from egtr.inference.postprocess import PostprocessOptions, postprocess
from egtr.models.egtr import EGTR
from egtr.precision import autocast, precision_note

FIELDS = ("logits", "pred_boxes", "rel_logits", "connectivity_logits")


def default_photo() -> Path:
    import matplotlib

    return Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"


def triplets(outputs, height: int, width: int, top: int = 100) -> set[tuple[int, int, int]]:
    """The best `top` (subject, predicate, object) of the graph-constrained list."""
    (prediction,) = postprocess(outputs, torch.tensor([[height, width]]), PostprocessOptions.visual_genome())
    pairs, predicates = prediction["rel_pairs"][:top], prediction["rel_scores"][:top].argmax(-1)
    return {(int(s), int(p), int(o)) for (s, o), p in zip(pairs.tolist(), predicates.tolist())}


def compare(model: EGTR, image, size: int, max_size: int, precisions: list[str]) -> dict:
    height, width = resized_shape(image.width, image.height, size, max_size)
    pixels = normalize_image(image.resize((width, height)))[None]
    mask = torch.ones(1, height, width, dtype=torch.bool)
    runs = {}
    for precision in ["fp32", *precisions]:
        start = time.perf_counter()
        with torch.inference_mode(), autocast("cpu", precision):
            outputs = model(pixels, mask)
        runs[precision] = (outputs, time.perf_counter() - start)
    reference, fp32_seconds = runs["fp32"]
    expected = triplets(reference, height, width)
    result = {"input": f"{height}x{width}", "fp32_seconds": fp32_seconds, "precisions": {}}
    for precision in precisions:
        outputs, seconds = runs[precision]
        result["precisions"][precision] = {
            "max_abs_difference": {
                field: (getattr(outputs, field).float() - getattr(reference, field)).abs().max().item()
                for field in FIELDS
            },
            "top100_triplet_overlap": len(expected & triplets(outputs, height, width)) / len(expected),
            "seconds": seconds,
            "note": precision_note("cpu", precision),
        }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--image", type=Path, help="a photo (default: matplotlib's grace_hopper.jpg)")
    parser.add_argument("--checkpoint", help="a model egtr.load_model accepts (default: random weights)")
    parser.add_argument("--preset", default="visual_genome", choices=EGTRConfig.PRESETS)
    parser.add_argument("--size", nargs=2, type=int, action="append", metavar=("SIZE", "MAX_SIZE"))
    parser.add_argument("--precision", nargs="+", default=["bf16", "fp16"], choices=("bf16", "fp16"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    image_path = args.image or default_photo()
    image = load_rgb(image_path, str(image_path))
    if args.checkpoint:
        from egtr.checkpoints import load_model

        model, weights = load_model(args.checkpoint), args.checkpoint
    else:
        torch.manual_seed(args.seed)
        model, weights = (
            EGTR(EGTRConfig.preset(args.preset)),
            f"random {args.preset} weights, seed {args.seed}",
        )
    model.eval()
    results = [
        compare(model, image, s, m, args.precision) for s, m in (args.size or [(600, 1000), (800, 1333)])
    ]
    report = {"machine": describe(), "image": str(image_path), "weights": weights, "results": results}
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(f"{describe()}\n{image_path.name} ({image.width}x{image.height}), {weights}\n")
    print(
        "| input | precision | max abs diff: class logits / boxes / relation / connectivity logits "
        "| top-100 triplet overlap | forward (fp32) |"
    )
    print("|---|---|---|---:|---:|")
    for result in results:
        for precision, row in result["precisions"].items():
            diffs = " / ".join(f"{row['max_abs_difference'][field]:.2g}" for field in FIELDS)
            print(
                f"| {result['input']} | {precision} | {diffs} | {100 * row['top100_triplet_overlap']:.0f}% "
                f"| {row['seconds']:.1f} s ({result['fp32_seconds']:.1f} s) |"
            )


if __name__ == "__main__":
    main()
