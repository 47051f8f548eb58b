"""Two-sample statistics of the analysis: ROC AUC (rank form, ties counted half) and Cohen's d."""

from __future__ import annotations

import math

import numpy as np


def roc_auc(scores: np.ndarray, positive: np.ndarray) -> float | None:
    """Area under the ROC curve of `scores` [n] for the labels `positive` [n] bool.

    = P(score of a random positive > score of a random negative) + P(equal) / 2, computed from average
    ranks (Mann-Whitney U / (n_pos n_neg)). None when one class is absent.
    """
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    positive = np.asarray(positive, dtype=bool).reshape(-1)
    if scores.shape != positive.shape:
        raise ValueError(f"scores {scores.shape} and labels {positive.shape} differ in length")
    num_positive = int(positive.sum())
    num_negative = len(positive) - num_positive
    if num_positive == 0 or num_negative == 0:
        return None
    # scipy is imported when used: `egtr --help` builds every parser
    from scipy.stats import rankdata

    ranks = rankdata(scores)  # average ranks of ties, 1-based
    u_statistic = ranks[positive].sum() - num_positive * (num_positive + 1) / 2
    return float(u_statistic / (num_positive * num_negative))


def cohen_d(first: np.ndarray, second: np.ndarray) -> float | None:
    """(mean(first) - mean(second)) / pooled standard deviation; None below 2 values per side or when
    both samples are constant."""
    first = np.asarray(first, dtype=np.float64).reshape(-1)
    second = np.asarray(second, dtype=np.float64).reshape(-1)
    if len(first) < 2 or len(second) < 2:
        return None
    pooled = ((len(first) - 1) * first.var(ddof=1) + (len(second) - 1) * second.var(ddof=1)) / (
        len(first) + len(second) - 2
    )
    if pooled <= 0:
        return None
    return float((first.mean() - second.mean()) / math.sqrt(pooled))
