"""Triplet matching of the neural-motifs / KERN evaluator (`_compute_pred_matches` of the official
`lib/evaluation/sg_eval.py`, architecture.md §10).

A predicted triplet hits a ground-truth triplet when the subject class, object class and predicate are
equal and both the subject and the object boxes have IoU >= threshold (+1-pixel convention, float64).
A prediction may hit several ground-truth triplets and a ground-truth triplet may be hit by several
predictions; recall@K counts the ground-truth triplets hit by any of the first K predictions, so each
ground-truth triplet only needs the rank of its first hit.
"""

from __future__ import annotations

import numpy as np

from egtr.boxes import iou_plus_one_pixel
from egtr.evaluation.candidates import RankedTriplets
from egtr.evaluation.inputs import GroundTruth, Prediction

NO_HIT = np.iinfo(np.int64).max  # first-hit rank of a ground-truth triplet that no prediction hits


def box_label_matches(prediction: Prediction, groundtruth: GroundTruth, iou_threshold: float) -> np.ndarray:
    """[K,M] bool: predicted box k and ground-truth box m have the same class and IoU >= threshold."""
    iou = iou_plus_one_pixel(groundtruth.boxes, prediction.boxes).T  # reference order: ground truth first
    return (iou >= iou_threshold) & (prediction.labels[:, None] == groundtruth.labels[None, :])


def triplet_hits(triplets: RankedTriplets, relations: np.ndarray, box_matches: np.ndarray) -> np.ndarray:
    """[C,T] bool: candidate c hits ground-truth relation t ([T,3] subject, object, predicate)."""
    subject_ok = box_matches[triplets.subjects][:, relations[:, 0]]
    object_ok = box_matches[triplets.objects][:, relations[:, 1]]
    return subject_ok & object_ok & (triplets.predicates[:, None] == relations[None, :, 2])


def first_hit_ranks(triplets: RankedTriplets, relations: np.ndarray, box_matches: np.ndarray) -> np.ndarray:
    """[T] int64: rank (0-based) of the first candidate that hits each ground-truth relation, or NO_HIT."""
    hits = triplet_hits(triplets, relations, box_matches)
    if len(triplets) == 0:
        return np.full(len(relations), NO_HIT, dtype=np.int64)
    return np.where(hits.any(axis=0), hits.argmax(axis=0), NO_HIT).astype(np.int64)
