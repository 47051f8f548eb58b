"""Frequency statistics against a slow, obviously correct reference."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from egtr.data import SceneGraphRecord, SceneGraphSplit, statistics


def random_records(rng, count, num_classes, num_predicates):
    records = []
    for index in range(count):
        objects = int(rng.integers(0, 6))
        relations = int(rng.integers(0, 8)) if objects else 0
        records.append(
            SceneGraphRecord(
                str(index),
                Path("x.png"),
                10,
                10,
                np.tile([0, 0, 1, 1], (objects, 1)),
                rng.integers(0, num_classes, objects),
                np.column_stack(
                    (
                        rng.integers(0, max(objects, 1), (relations, 2)),
                        rng.integers(0, num_predicates, relations),
                    )
                ),
            )
        )
    return records


def test_fg_matrix_matches_a_loop_over_triplets():
    rng = np.random.default_rng(0)
    records = random_records(rng, 50, num_classes=5, num_predicates=4)
    reference = np.zeros((6, 6, 4), dtype=np.int64)
    for record in records:
        for s, o, p in record.relations:
            reference[record.labels[s], record.labels[o], p] += 1
    matrix = statistics.fg_matrix(records, 5, 4)
    assert matrix.dtype == np.int64 and matrix.shape == (6, 6, 4)
    assert np.array_equal(matrix, reference)
    assert matrix[5].sum() == 0 and matrix[:, 5].sum() == 0
    assert np.array_equal(statistics.predicate_counts(records, 4), reference.sum((0, 1)))
    assert statistics.class_counts(records, 5).sum() == sum(r.num_objects for r in records)


def test_empty_inputs():
    assert statistics.fg_matrix([], 3, 2).shape == (4, 4, 2)
    assert statistics.predicate_counts([], 2).tolist() == [0, 0]
    assert statistics.predicate_frequencies(np.zeros(2, np.int64)).tolist() == [0.0, 0.0]
    assert statistics.top_triplets(np.zeros((2, 2, 1), np.int64), 3) == []


def test_top_triplets_and_describe_split():
    record = SceneGraphRecord(
        "1", Path("x.png"), 10, 10, np.zeros((3, 4)), [0, 1, 1], [[0, 1, 1], [0, 2, 1], [1, 0, 0], [2, 1, 0]]
    )
    matrix = statistics.fg_matrix([record], 2, 2)
    assert statistics.top_triplets(matrix, 2) == [(0, 1, 1, 2), (1, 0, 0, 1)]
    split = SceneGraphSplit([record], ["cat", "dog"], ["near", "on"], "coco", Path("."), "train")
    described = statistics.describe_split(split, top=1)
    assert described["predicate_counts"] == {"near": 2, "on": 2}
    assert described["predicate_frequencies"] == {"near": 0.5, "on": 0.5}
    assert described["class_counts"] == {"cat": 1, "dog": 2}
    assert described["top_triplets"] == [{"subject": "cat", "predicate": "on", "object": "dog", "count": 2}]
    assert (described["images"], described["objects"], described["relations"]) == (1, 3, 4)
