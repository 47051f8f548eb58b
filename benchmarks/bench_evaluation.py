"""Speed of the relation evaluators on generated data of the Visual Genome test-split size.

Default: 26,446 images, 200 predicted boxes and 100 predicted pairs x 50 predicates per image, ground truth
of 10-25 boxes and ~6 relations per image. Times `SceneGraphEvaluator` (R, mR, ngR, ngmR, zR, F1 at
K = 20, 50, 100) and, with --protocol oi, `OpenImagesEvaluator`; data generation is not timed.

    python benchmarks/bench_evaluation.py [--images N] [--protocol vg|oi] [--json]
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import numpy as np

from egtr.evaluation import OpenImagesEvaluator, SceneGraphEvaluator

NUM_CLASSES = 150


def generate_image(rng: np.random.Generator, queries: int, pairs: int, predicates: int) -> tuple[dict, dict]:
    """One (groundtruth, prediction): predictions are jittered copies of ground-truth boxes, so that
    a realistic share of triplets match."""
    num_boxes = int(rng.integers(10, 26))
    corners = rng.uniform(0, 500, size=(num_boxes, 2))
    boxes = np.concatenate((corners, corners + rng.uniform(20, 300, size=(num_boxes, 2))), axis=1)
    labels = rng.integers(0, NUM_CLASSES, num_boxes)
    num_relations = max(1, int(rng.poisson(6)))
    relations = np.stack(
        (
            rng.integers(0, num_boxes, num_relations),
            rng.integers(0, num_boxes, num_relations),
            rng.integers(0, predicates, num_relations),
        ),
        axis=1,
    )
    source = np.concatenate((np.arange(num_boxes), rng.integers(0, num_boxes, queries - num_boxes)))
    predicted_boxes = (boxes[source] + rng.normal(0, 8, size=(queries, 4))).astype(np.float32)
    predicted_labels = np.where(
        rng.random(queries) < 0.7, labels[source], rng.integers(0, NUM_CLASSES, queries)
    )
    rel_pairs = rng.integers(0, queries, size=(pairs, 2))
    rel_scores = rng.random((pairs, predicates), dtype=np.float32)
    found = rng.random(num_relations) < 0.6  # query m copies ground-truth box m: these pairs can hit
    slots = rng.choice(pairs, size=min(int(found.sum()), pairs), replace=False)
    rel_pairs[slots] = relations[found][: len(slots), :2]
    rel_scores[slots, relations[found][: len(slots), 2]] = 1.0
    groundtruth = {"boxes": boxes, "labels": labels, "relations": relations}
    prediction = {
        "boxes": predicted_boxes,
        "labels": predicted_labels,
        "scores": rng.random(queries, dtype=np.float32),
        "rel_pairs": rel_pairs,
        "rel_scores": rel_scores,
    }
    return groundtruth, prediction


def training_triplets(rng: np.random.Generator, predicates: int, count: int = 20000) -> np.ndarray:
    return np.stack(
        (
            rng.integers(0, NUM_CLASSES, count),
            rng.integers(0, NUM_CLASSES, count),
            rng.integers(0, predicates, count),
        ),
        axis=1,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=26446, help="number of images (default: 26446)")
    parser.add_argument("--queries", type=int, default=200, help="predicted boxes per image (default: 200)")
    parser.add_argument("--pairs", type=int, default=100, help="predicted pairs per image (default: 100)")
    parser.add_argument("--predicates", type=int, default=50, help="predicates (default: 50)")
    parser.add_argument(
        "--protocol", choices=("vg", "oi"), default="vg", help="evaluator to time (default: vg)"
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    parser.add_argument("--json", action="store_true", help="print one JSON object (default: text)")
    args = parser.parse_args()

    rng = np.random.default_rng(args.seed)
    started = time.perf_counter()
    images = [generate_image(rng, args.queries, args.pairs, args.predicates) for _ in range(args.images)]
    generation_s = time.perf_counter() - started
    if args.protocol == "vg":
        evaluator = SceneGraphEvaluator(
            args.predicates, zero_shot_triplets=training_triplets(rng, args.predicates)
        )
    else:
        evaluator = OpenImagesEvaluator(args.predicates)

    started = time.perf_counter()
    for groundtruth, prediction in images:
        evaluator.update(groundtruth, prediction)
    update_s = time.perf_counter() - started
    started = time.perf_counter()
    metrics = evaluator.compute()
    compute_s = time.perf_counter() - started

    result = {
        "protocol": args.protocol,
        "images": args.images,
        "queries": args.queries,
        "pairs": args.pairs,
        "predicates": args.predicates,
        "update_s": round(update_s, 2),
        "compute_s": round(compute_s, 2),
        "total_s": round(update_s + compute_s, 2),
        "ms_per_image": round(1000 * (update_s + compute_s) / args.images, 3),
        "generation_s": round(generation_s, 2),
        "R@50" if args.protocol == "vg" else "score_wtd": metrics[
            "R@50" if args.protocol == "vg" else "score_wtd"
        ],
        "machine": f"{platform.processor() or platform.machine()}, numpy {np.__version__}",
    }
    print(json.dumps(result) if args.json else "\n".join(f"{key}: {value}" for key, value in result.items()))


if __name__ == "__main__":
    main()
