"""Relation average precision of the Open Images protocol (PySGG `ap_eval_rel.py`, from Detectron's VOC eval).

The reference is the copy the official EGTR runs, `lib/evaluation/ap_eval_rel.py` (architecture.md §10).

Detections of one predicate, pooled over images and sorted by score, are true positives when their best
ground truth (same predicate and classes, highest overlap, first on ties) has overlap > threshold (strict)
and no earlier detection of the same image claimed it. AP is the VOC all-point interpolated area.
"""

from __future__ import annotations

import numpy as np


def first_claims(best_truth: np.ndarray, best_overlap: np.ndarray, threshold: float) -> np.ndarray:
    """[C] bool true positives of C detections of one image, in score order (best first).

    `best_truth` [C] is each detection's best ground-truth index and `best_overlap` [C] its overlap. A
    detection above the threshold whose ground truth was already claimed is a false positive (it does not
    fall back to its second-best ground truth), exactly as the reference's `visited` flags.
    """
    true_positive = np.zeros(len(best_truth), dtype=bool)
    above = np.flatnonzero(best_overlap > threshold)
    _, first = np.unique(best_truth[above], return_index=True)
    true_positive[above[first]] = True
    return true_positive


def voc_average_precision(true_positive: np.ndarray, num_positives: int) -> float:
    """All-point interpolated AP from [n] true-positive flags sorted by descending score.

    Same arithmetic as the reference: recall = tp / (npos + 1e-12), precision = tp / max(tp + fp, eps),
    precision envelope, sum of recall steps times envelope.
    """
    true_positives = np.cumsum(true_positive.astype(np.float64))
    false_positives = np.cumsum(1.0 - true_positive.astype(np.float64))
    recall = true_positives / (float(num_positives) + 1e-12)
    precision = true_positives / np.maximum(true_positives + false_positives, np.finfo(np.float64).eps)
    recall_points = np.concatenate(([0.0], recall, [1.0]))
    envelope = np.concatenate(([0.0], precision, [0.0]))
    envelope = np.maximum.accumulate(envelope[::-1])[::-1]
    steps = np.flatnonzero(recall_points[1:] != recall_points[:-1])
    return float(np.sum((recall_points[steps + 1] - recall_points[steps]) * envelope[steps + 1]))
