"""Failure categories of ground-truth triplets, on a hand-built image."""

import numpy as np

from egtr.studies.failures import failure_counts

# ground truth: boxes 0, 1, 2, 3 (classes 0, 1, 2, 3)
GROUND_TRUTH = {
    "boxes": np.array([[0, 0, 10, 10], [20, 0, 30, 10], [40, 0, 50, 10], [60, 0, 70, 10]], float),
    "labels": np.array([0, 1, 2, 3]),
    "relations": np.array(
        [
            [0, 1, 0],  # recalled: pair (0, 1) with predicate 0 in the top K
            [1, 0, 1],  # wrong predicate: pair (1, 0) in the top K with predicate 0
            [0, 2, 1],  # ranked below top K: both detected, pair (0, 2) not in the top K
            [3, 0, 0],  # subject missed: box 3 is predicted with the wrong class
            [2, 3, 1],  # object missed
        ]
    ),
}
PREDICTION = {
    # predicted boxes: exact copies of gt 0, 1, 2; gt 3's box with class 0 (so not a detection of it)
    "boxes": GROUND_TRUTH["boxes"].copy(),
    "labels": np.array([0, 1, 2, 0]),
    "scores": np.array([0.9, 0.9, 0.9, 0.9]),
    "rel_pairs": np.array([[0, 1], [1, 0], [2, 1], [0, 2]]),  # best first; (0, 2) ranked 4th
    "rel_scores": np.array([[0.9, 0.1], [0.8, 0.2], [0.7, 0.1], [0.1, 0.9]]),
}


def test_each_category_by_hand():
    counts = failure_counts(GROUND_TRUTH, PREDICTION, num_predicates=2, top_k=3)
    assert counts == {
        "recalled": 1,
        "wrong predicate": 1,
        "pair ranked below top K": 1,
        "subject missed": 1,
        "object missed": 1,
        "subject and object missed": 0,
    }
    # with K = 4 the pair (0, 2) is in the list, with its right predicate 1: recalled
    assert failure_counts(GROUND_TRUTH, PREDICTION, num_predicates=2, top_k=4)["recalled"] == 2


def test_a_prediction_without_boxes_misses_everything():
    empty = {
        "boxes": np.zeros((0, 4)),
        "labels": np.zeros(0, int),
        "scores": np.zeros(0),
        "rel_pairs": np.zeros((0, 2), int),
        "rel_scores": np.zeros((0, 2)),
    }
    counts = failure_counts(GROUND_TRUTH, empty, num_predicates=2)
    assert counts["subject and object missed"] == 5 and sum(counts.values()) == 5
