"""Training-split statistics: the frequency-bias matrix and the class/predicate/triplet counts.

`fg_matrix` is the official one (architecture.md §5.4): int64 [C+1, C+1, R] counted over ground-truth
triplets, fg[class(subject), class(object), predicate]; the extra row and column C stay 0.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from egtr.data.record import SceneGraphRecord, SceneGraphSplit


def triplet_classes(records: Iterable[SceneGraphRecord]) -> np.ndarray:
    """int64 [T,3] (subject class, object class, predicate) over all relations of `records`."""
    rows = [
        np.column_stack((r.labels[r.relations[:, 0]], r.labels[r.relations[:, 1]], r.relations[:, 2]))
        for r in records
        if r.num_relations
    ]
    return np.concatenate(rows) if rows else np.zeros((0, 3), dtype=np.int64)


def fg_matrix(records: Iterable[SceneGraphRecord], num_classes: int, num_predicates: int) -> np.ndarray:
    """int64 [C+1, C+1, R]: how often each (subject class, object class, predicate) occurs."""
    counts = np.zeros((num_classes + 1, num_classes + 1, num_predicates), dtype=np.int64)
    triplets = triplet_classes(records)
    np.add.at(counts, (triplets[:, 0], triplets[:, 1], triplets[:, 2]), 1)
    return counts


def predicate_counts(records: Iterable[SceneGraphRecord], num_predicates: int) -> np.ndarray:
    """int64 [R]: relations per predicate."""
    predicates = [r.relations[:, 2] for r in records]
    return np.bincount(np.concatenate([*predicates, np.zeros(0, np.int64)]), minlength=num_predicates)


def class_counts(records: Iterable[SceneGraphRecord], num_classes: int) -> np.ndarray:
    """int64 [C]: boxes per class."""
    labels = [r.labels for r in records]
    return np.bincount(np.concatenate([*labels, np.zeros(0, np.int64)]), minlength=num_classes)


def predicate_frequencies(counts: np.ndarray) -> np.ndarray:
    """float64 [R]: share of each predicate among all relations (0 when there are none)."""
    total = counts.sum()
    return counts / total if total else np.zeros(len(counts))


def top_triplets(matrix: np.ndarray, k: int) -> list[tuple[int, int, int, int]]:
    """The k most frequent (subject class, predicate, object class, count) of an fg_matrix, count > 0."""
    flat = matrix.reshape(-1)
    order = np.argsort(-flat, kind="stable")[:k]
    subjects, objects, predicates = np.unravel_index(order, matrix.shape)
    return [
        (int(s), int(p), int(o), int(flat[i]))
        for s, o, p, i in zip(subjects, objects, predicates, order)
        if flat[i] > 0
    ]


def describe_split(split: SceneGraphSplit, top: int = 10) -> dict:
    """JSON-ready statistics of a split: counts of images, objects, relations, classes and predicates
    (with shares), and the `top` most frequent triplets by name."""
    records = split.records
    predicates = predicate_counts(records, split.num_predicates)
    classes = class_counts(records, split.num_classes)
    matrix = fg_matrix(records, split.num_classes, split.num_predicates)
    return {
        "root": str(split.root),
        "layout": split.layout,
        "split": split.split,
        "images": len(records),
        "objects": int(classes.sum()),
        "relations": int(predicates.sum()),
        "predicate_counts": dict(zip(split.predicate_names, predicates.tolist())),
        "predicate_frequencies": dict(zip(split.predicate_names, predicate_frequencies(predicates).tolist())),
        "class_counts": dict(zip(split.class_names, classes.tolist())),
        "top_triplets": [
            {
                "subject": split.class_names[s],
                "predicate": split.predicate_names[p],
                "object": split.class_names[o],
                "count": count,
            }
            for s, p, o, count in top_triplets(matrix, top)
        ],
    }
