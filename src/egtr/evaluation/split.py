"""Evaluate a dataset split from per-image predictions (shared by `egtr evaluate` and the training loop).

Ground truth comes from dataset records (`image_id`, `boxes` [M,4] xyxy pixels, `labels` [M],
`relations` [T,3]). Predictions are (image_id, prediction dict) pairs in any order; a prediction for an
image that is not in the split is an error, a split image without a prediction is evaluated with an
empty prediction and reported. Relation metrics follow the protocol ("vg": `SceneGraphEvaluator`, "oi":
`OpenImagesEvaluator`); COCO detection AP is added when the predictions carry `detections`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from egtr.evaluation.detection import DetectionEvaluator
from egtr.evaluation.inputs import EvaluationInputError
from egtr.evaluation.open_images import OpenImagesEvaluator
from egtr.evaluation.recall import DEFAULT_RECALL_KS, SceneGraphEvaluator

PROTOCOLS = ("vg", "oi")
DETECTION_CONVENTION = {"vg": "coco", "oi": "open_images"}


@dataclass
class SplitEvaluation:
    metrics: dict  # scalar metrics, `per_predicate`, `counts`
    missing_image_ids: list[str] = field(default_factory=list)  # split images evaluated without a prediction


def evaluate_split(
    records: Sequence,
    predictions: Iterable[tuple[str, Mapping]],
    protocol: str = "vg",
    *,
    num_classes: int,
    num_predicates: int,
    predicate_names: Sequence[str] | None = None,
    recall_ks: Sequence[int] = DEFAULT_RECALL_KS,
    zero_shot_triplets: Iterable[tuple[int, int, int]] | np.ndarray | None = None,
) -> SplitEvaluation:
    """Evaluate `predictions` against `records` with the given protocol; see the module docstring."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")
    if protocol == "vg":
        relations = SceneGraphEvaluator(
            num_predicates, recall_ks, zero_shot_triplets=zero_shot_triplets, predicate_names=predicate_names
        )
    else:
        relations = OpenImagesEvaluator(num_predicates, predicate_names, recall_ks=recall_ks)
    detection = DetectionEvaluator(num_classes, DETECTION_CONVENTION[protocol])
    by_id = {str(record.image_id): record for record in records}
    seen: set[str] = set()
    with_detections: bool | None = None
    for image_id, prediction in predictions:
        image_id = str(image_id)
        if image_id not in by_id:
            raise EvaluationInputError(f"prediction for image {image_id}, which is not in the split")
        if image_id in seen:
            raise EvaluationInputError(f"two predictions for image {image_id}")
        if with_detections is None:
            with_detections = "detections" in prediction
        if ("detections" in prediction) != with_detections:
            raise EvaluationInputError(
                f"image {image_id}: either every prediction has 'detections' or none does"
            )
        seen.add(image_id)
        _update(relations, detection if with_detections else None, by_id[image_id], prediction)
    missing = [image_id for image_id in by_id if image_id not in seen]
    for image_id in missing:
        _update(
            relations,
            detection if with_detections else None,
            by_id[image_id],
            empty_prediction(num_predicates),
        )
    metrics = relations.compute()
    if with_detections:
        metrics.update(detection.compute())
    counts = metrics.pop("counts")
    counts.update(split_images=len(by_id), images_without_prediction=len(missing))
    metrics["counts"] = counts
    return SplitEvaluation(metrics, missing)


def count_unreadable(evaluation: SplitEvaluation) -> SplitEvaluation:
    """For a model's own predictions, where every readable image gets one (training-time metrics and
    `egtr evaluate --checkpoint` alike): the split images without a prediction are those whose file could
    not be read. They stay in the metrics as empty predictions (they count against recall) and are
    counted as `counts["unreadable_images"]`."""
    evaluation.metrics["counts"]["unreadable_images"] = len(evaluation.missing_image_ids)
    return evaluation


def _update(relations, detection: DetectionEvaluator | None, record, prediction: Mapping) -> None:
    truth = {"boxes": record.boxes, "labels": record.labels, "relations": record.relations}
    relations.update(truth, prediction, image_id=record.image_id)
    if detection is not None:
        detection.update(truth, prediction.get("detections", _EMPTY_DETECTIONS), image_id=record.image_id)


_EMPTY_DETECTIONS = {
    "boxes": np.zeros((0, 4), np.float32),
    "labels": np.zeros(0, np.int64),
    "scores": np.zeros(0),
}


def empty_prediction(num_predicates: int) -> dict:
    """A prediction with no objects and no pairs (for split images that have no saved prediction)."""
    return {
        "boxes": np.zeros((0, 4), np.float32),
        "labels": np.zeros(0, np.int64),
        "scores": np.zeros(0, np.float32),
        "rel_pairs": np.zeros((0, 2), np.int64),
        "rel_scores": np.zeros((0, num_predicates), np.float32),
        "detections": _EMPTY_DETECTIONS,
    }
