"""Random images (ground truth + prediction) that produce many near-threshold matches and score ties."""

from __future__ import annotations

import numpy as np


def random_image(rng: np.random.Generator, num_classes=4, num_predicates=5, num_queries=8, max_pairs=30):
    """One (groundtruth, prediction) pair in the architecture.md §4 convention."""
    num_boxes = int(rng.integers(1, 7))
    corners = rng.integers(0, 40, size=(num_boxes, 2)).astype(np.float64)
    sizes = rng.integers(2, 25, size=(num_boxes, 2)).astype(np.float64)
    gt_boxes = np.concatenate((corners, corners + sizes), axis=1)
    gt_labels = rng.integers(0, num_classes, num_boxes)
    num_relations = int(rng.integers(0, 9))
    relations = np.stack(
        (
            rng.integers(0, num_boxes, num_relations),
            rng.integers(0, num_boxes, num_relations),
            rng.integers(0, num_predicates, num_relations),
        ),
        axis=1,
    )
    if num_relations and rng.random() < 0.3:
        relations = np.concatenate((relations, relations[:1]))  # a duplicate ground-truth triplet
    source = rng.integers(0, num_boxes, num_queries)
    jitter = rng.choice([0.0, 0.5, 1.0, 2.0, 4.0], size=(num_queries, 4)) * rng.choice(
        [-1, 1], size=(num_queries, 4)
    )
    boxes = (gt_boxes[source] + jitter).astype(np.float32)
    boxes[:, 2:] = np.maximum(boxes[:, 2:], boxes[:, :2] + 1)
    labels = np.where(
        rng.random(num_queries) < 0.8, gt_labels[source], rng.integers(0, num_classes, num_queries)
    )
    scores = (rng.integers(1, 11, num_queries) / 10).astype(np.float32)  # coarse: ties happen
    all_pairs = np.array([(i, j) for i in range(num_queries) for j in range(num_queries) if i != j])
    num_pairs = int(rng.integers(0, min(max_pairs, len(all_pairs)) + 1))
    rel_pairs = all_pairs[rng.permutation(len(all_pairs))[:num_pairs]]
    rel_scores = (rng.integers(0, 21, size=(num_pairs, num_predicates)) / 20).astype(np.float32)
    groundtruth = {"boxes": gt_boxes, "labels": gt_labels, "relations": relations}
    prediction = {
        "boxes": boxes,
        "labels": labels,
        "scores": scores,
        "rel_pairs": rel_pairs,
        "rel_scores": rel_scores,
    }
    return groundtruth, prediction


def random_images(seed: int, count: int, **options):
    rng = np.random.default_rng(seed)
    return [random_image(rng, **options) for _ in range(count)]
