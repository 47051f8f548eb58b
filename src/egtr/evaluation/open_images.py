"""Open Images V6 relation metrics (architecture.md §5.8), as PySGG / BGNN's evaluator computes them.

The reference is the copy the official EGTR runs, `lib/evaluation/oi_eval.py` and `ap_eval_rel.py`
(repositories and commits: architecture.md §10).

Per image, the candidates are the 2 best predicates of every given pair scored s_sub * s_obj * rel, the
100 best of those, keeping scores > 1e-5 (the selection lives here, in `open_images_triplets`; the
post-processing only has to hand over enough pairs: the top-100 pairs by best-predicate score, self-pairs
included, contain every pair of the selection).
- R@K (micro): sum over images of ground-truth triplets hit by the first K candidates (VG matching:
  classes equal, IoU >= 0.5 with +1 pixel) / (total ground-truth triplets + 1e-12).
- per predicate AP for relation detection (overlap = min of subject and object IoU) and phrase detection
  (IoU of the subject-object union boxes), IoU with +1 on the intersection only, in float32, strict > 0.5.
- wmAP_rel / wmAP_phr = sum_c AP_c * npos_c / sum npos; score_wtd = 0.2 R@50 + 0.4 wmAP_rel + 0.4 wmAP_phr.
Images without a ground-truth relation are skipped and counted (the reference crashes on them).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from egtr.boxes import iou_plus_one_intersection
from egtr.evaluation.average_precision import first_claims, voc_average_precision
from egtr.evaluation.candidates import RankedTriplets, open_images_triplets
from egtr.evaluation.inputs import GroundTruth, Prediction, read_image_inputs
from egtr.evaluation.matching import box_label_matches, first_hit_ranks

OPEN_IMAGES_RECALL_KS = (20, 50, 100)
AP_KINDS = ("rel", "phr")


class OpenImagesEvaluator:
    """Accumulates images with `update(groundtruth, prediction)`; `compute()` returns the OI metrics."""

    def __init__(
        self,
        num_predicates: int,
        predicate_names: Sequence[str] | None = None,
        *,
        recall_ks: Sequence[int] = OPEN_IMAGES_RECALL_KS,
        top_k: int = 100,
        predicates_per_pair: int = 2,
        min_score: float = 1e-5,
        iou_threshold: float = 0.5,
    ):
        if num_predicates < 1:
            raise ValueError(f"num_predicates must be >= 1, got {num_predicates}")
        if predicate_names is not None and len(predicate_names) != num_predicates:
            raise ValueError(f"{len(predicate_names)} predicate names for {num_predicates} predicates")
        self.num_predicates = num_predicates
        self.predicate_names = list(predicate_names) if predicate_names is not None else None
        self.recall_ks = tuple(sorted(set(int(k) for k in recall_ks) | {50}))
        self.top_k = top_k
        self.predicates_per_pair = predicates_per_pair
        self.min_score = min_score
        self.iou_threshold = iou_threshold
        self.reset()

    def reset(self) -> None:
        self._hits = dict.fromkeys(self.recall_ks, 0)
        self._num_positives = np.zeros(self.num_predicates, dtype=np.int64)
        self._detections: dict[str, list[np.ndarray]] = {"predicate": [], "score": [], "rel": [], "phr": []}
        self._num_images = 0
        self._images_without_relations = 0

    def update(self, groundtruth: Mapping, prediction: Mapping, image_id: object | None = None) -> None:
        """Add one image (architecture.md §4 dicts). `image_id` only names the image in error messages."""
        truth, predicted = read_image_inputs(groundtruth, prediction, self.num_predicates, image_id)
        if len(truth.relations) == 0:
            self._images_without_relations += 1
            return
        triplets = open_images_triplets(predicted, self.top_k, self.predicates_per_pair, self.min_score)
        ranks = first_hit_ranks(
            triplets, truth.relations, box_label_matches(predicted, truth, self.iou_threshold)
        )
        for k in self.recall_ks:
            self._hits[k] += int((ranks < k).sum())
        self._num_positives += np.bincount(truth.relations[:, 2], minlength=self.num_predicates)
        detections = self._detections
        detections["predicate"].append(triplets.predicates)
        detections["score"].append(triplets.scores.astype(np.float64))
        for kind in AP_KINDS:
            detections[kind].append(
                relation_true_positives(triplets, predicted, truth, kind, self.iou_threshold)
            )
        self._num_images += 1

    def compute(self) -> dict:
        """R@K (micro), wmAP_rel, wmAP_phr, score_wtd, mAP_rel, mAP_phr, `per_predicate` rows, `counts`."""
        total = int(self._num_positives.sum())
        metrics: dict = {
            f"R@{k}": self._hits[k] / (float(total) + 1e-12) if total else None for k in self.recall_ks
        }
        average_precisions = self._average_precisions()
        for kind in AP_KINDS:
            metrics[f"wmAP_{kind}"] = weighted_mean_ap(average_precisions[kind], self._num_positives)
        for kind in AP_KINDS:
            metrics[f"mAP_{kind}"] = (
                float(sum(average_precisions[kind])) / self.num_predicates if total else None
            )
        parts = (metrics["wmAP_rel"], metrics["wmAP_phr"], metrics["R@50"])
        metrics["score_wtd"] = None if None in parts else parts[0] * 0.4 + parts[1] * 0.4 + parts[2] * 0.2
        metrics["per_predicate"] = [
            {
                "predicate": c,
                "name": self.predicate_names[c] if self.predicate_names else str(c),
                "gt_triplets": int(self._num_positives[c]),
                "AP_rel": average_precisions["rel"][c] if total else None,
                "AP_phr": average_precisions["phr"][c] if total else None,
            }
            for c in range(self.num_predicates)
        ]
        metrics["counts"] = {
            "images": self._num_images,
            "images_without_relations": self._images_without_relations,
            "gt_triplets": total,
        }
        return metrics

    def _average_precisions(self) -> dict[str, list[float]]:
        """Per-predicate AP: detections of each predicate pooled over images, sorted by score (stable)."""
        columns = {
            name: np.concatenate(parts) if parts else np.zeros(0) for name, parts in self._detections.items()
        }
        predicate = columns["predicate"].astype(np.int64)
        order = np.lexsort((-columns["score"], predicate))  # by predicate, then descending score, stable
        bounds = np.searchsorted(predicate[order], np.arange(self.num_predicates + 1))
        return {
            kind: [
                voc_average_precision(
                    columns[kind][order[bounds[c] : bounds[c + 1]]].astype(bool), self._num_positives[c]
                )
                for c in range(self.num_predicates)
            ]
            for kind in AP_KINDS
        }


def relation_true_positives(
    triplets: RankedTriplets, prediction: Prediction, groundtruth: GroundTruth, kind: str, threshold: float
) -> np.ndarray:
    """[C] bool true positives of one image's candidates for relation (`rel`) or phrase (`phr`) detection."""
    relations = groundtruth.relations
    same_classes = (
        (triplets.predicates[:, None] == relations[None, :, 2])
        & (prediction.labels[triplets.subjects][:, None] == groundtruth.labels[relations[None, :, 0]])
        & (prediction.labels[triplets.objects][:, None] == groundtruth.labels[relations[None, :, 1]])
    )
    subject_boxes, object_boxes = prediction.boxes[triplets.subjects], prediction.boxes[triplets.objects]
    truth_subjects, truth_objects = groundtruth.boxes[relations[:, 0]], groundtruth.boxes[relations[:, 1]]
    if kind == "rel":
        overlaps = np.minimum(
            iou_plus_one_intersection(subject_boxes, truth_subjects),
            iou_plus_one_intersection(object_boxes, truth_objects),
        )
    else:
        overlaps = iou_plus_one_intersection(
            union_boxes(subject_boxes, object_boxes), union_boxes(truth_subjects, truth_objects)
        )
    overlaps = overlaps * same_classes
    if overlaps.shape[1] == 0:
        return np.zeros(len(triplets), dtype=bool)
    best_truth = overlaps.argmax(axis=1)
    return first_claims(best_truth, overlaps[np.arange(len(best_truth)), best_truth], threshold)


def union_boxes(boxes1: np.ndarray, boxes2: np.ndarray) -> np.ndarray:
    """[n,4] smallest xyxy boxes enclosing each pair of [n,4] boxes."""
    return np.concatenate(
        (np.minimum(boxes1[:, :2], boxes2[:, :2]), np.maximum(boxes1[:, 2:], boxes2[:, 2:])), axis=1
    )


def weighted_mean_ap(average_precisions: list[float], num_positives: np.ndarray) -> float | None:
    """sum_c AP_c * npos_c / sum npos, accumulated in predicate order as the reference."""
    all_positives = int(num_positives.sum())
    if all_positives == 0:
        return None
    total = 0.0
    for ap, positives in zip(average_precisions, num_positives):
        total += ap * float(positives) / float(all_positives)
    return total
