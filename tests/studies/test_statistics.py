"""ROC AUC and Cohen's d against hand-computed values and a brute-force pair count."""

import itertools
import math

import numpy as np
import pytest

from egtr.studies.statistics import cohen_d, roc_auc


def brute_force_auc(scores, positive):
    """Share of (positive, negative) pairs ranked correctly, ties counted half."""
    pairs = [
        1.0 if p > n else 0.5 if p == n else 0.0
        for p, n in itertools.product(
            [s for s, y in zip(scores, positive) if y], [s for s, y in zip(scores, positive) if not y]
        )
    ]
    return sum(pairs) / len(pairs)


def test_auc_of_a_hand_computed_example_with_a_tie():
    # positives 0.9, 0.4, 0.4; negatives 0.8, 0.4: pairs (0.9>0.8, 0.9>0.4, 0.4<0.8, 0.4=0.4, 0.4<0.8,
    # 0.4=0.4) = 1 + 1 + 0 + 0.5 + 0 + 0.5 = 3 of 6
    scores = [0.9, 0.8, 0.4, 0.4, 0.4]
    positive = [True, False, True, False, True]
    assert roc_auc(np.array(scores), np.array(positive)) == pytest.approx(0.5)
    assert roc_auc(np.array([3.0, 1.0, 2.0]), np.array([True, False, False])) == 1.0
    assert roc_auc(np.array([1.0, 2.0]), np.array([True, False])) == 0.0
    assert roc_auc(np.ones(4), np.array([True, False, True, False])) == 0.5


def test_auc_equals_the_brute_force_pair_count():
    rng = np.random.default_rng(0)
    for _ in range(20):
        scores = rng.integers(0, 5, size=30).astype(float)  # many ties
        positive = rng.random(30) < 0.4
        assert roc_auc(scores, positive) == pytest.approx(brute_force_auc(scores, positive))


def test_auc_needs_both_classes():
    assert roc_auc(np.array([1.0, 2.0]), np.array([True, True])) is None
    with pytest.raises(ValueError, match="differ in length"):
        roc_auc(np.array([1.0]), np.array([True, False]))


def test_cohen_d_by_hand():
    # means 2 and 5; sample variances 1 and 1 -> pooled sd 1 -> d = -3
    assert cohen_d(np.array([1.0, 2.0, 3.0]), np.array([4.0, 5.0, 6.0])) == pytest.approx(-3.0)
    # variances 1 (n=3) and 4 (n=2): pooled = (2*1 + 1*4) / 3 = 2
    assert cohen_d(np.array([1.0, 2.0, 3.0]), np.array([0.0, 4.0])) == pytest.approx(0.0)
    assert cohen_d(np.array([2.0, 4.0, 6.0]), np.array([0.0, 4.0])) == pytest.approx(
        2 / math.sqrt((2 * 4 + 8) / 3)
    )
    assert cohen_d(np.array([1.0]), np.array([1.0, 2.0])) is None
    assert cohen_d(np.array([1.0, 1.0]), np.array([1.0, 1.0])) is None
