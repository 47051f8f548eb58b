"""Per-image evaluator inputs (architecture.md §4): read, check and normalize ground truth and predictions.

Ground truth: `{"boxes": [M,4] xyxy pixels, "labels": [M], "relations": [T,3] (subject, object,
predicate)}`. Prediction: `{"boxes": [K,4], "labels": [K], "scores": [K], "rel_pairs": [P,2] (best pair
first), "rel_scores": [P,R]}`. Indices are 0-based; R has no background column. Values may be numpy
arrays, torch tensors or nested lists.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np


class EvaluationInputError(ValueError):
    """A per-image evaluator input is malformed; the message names the image and the field."""


@dataclass(frozen=True)
class GroundTruth:
    boxes: np.ndarray  # [M,4] float64 xyxy pixels
    labels: np.ndarray  # [M] int64
    relations: np.ndarray  # [T,3] int64 (subject, object, predicate), unique rows


@dataclass(frozen=True)
class Prediction:
    boxes: np.ndarray  # [K,4] float xyxy pixels (dtype kept: float32 model outputs stay float32)
    labels: np.ndarray  # [K] int64
    scores: np.ndarray  # [K] float (dtype kept)
    rel_pairs: np.ndarray  # [P,2] int64 (subject, object), best pair first
    rel_scores: np.ndarray  # [P,R] float (dtype kept)


def to_numpy(value: Any) -> np.ndarray:
    """numpy array from a numpy array, a torch tensor (any device) or a nested list."""
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    return np.asarray(value)


def _field(entry: Mapping, name: str, columns: int | None, kind: str, where: str) -> np.ndarray:
    if name not in entry:
        raise EvaluationInputError(f"{where}: missing field {name!r}")
    array = to_numpy(entry[name])
    if array.size == 0:
        array = array.reshape((0,) if columns is None else (0, columns))
    expected_ndim = 1 if columns is None else 2
    if array.ndim != expected_ndim or (columns is not None and array.shape[1] != columns):
        shape = "[n]" if columns is None else f"[n,{columns}]"
        raise EvaluationInputError(
            f"{where}: field {name!r} must have shape {shape}, got {list(array.shape)}"
        )
    if kind == "int":
        is_integer = np.issubdtype(array.dtype, np.integer)
        if array.size and not is_integer and not np.all(np.equal(np.mod(array, 1), 0)):
            raise EvaluationInputError(f"{where}: field {name!r} must hold integers")
        return array.astype(np.int64, copy=False)
    if not np.issubdtype(array.dtype, np.floating):
        array = array.astype(np.float64)
    if not np.all(np.isfinite(array)):
        raise EvaluationInputError(f"{where}: field {name!r} holds NaN or infinite values")
    return array


def _check_range(values: np.ndarray, upper: int, name: str, what: str, where: str) -> None:
    if values.size and (values.min() < 0 or values.max() >= upper):
        raise EvaluationInputError(
            f"{where}: field {name!r} has {what} outside [0, {upper}): min {values.min()}, max {values.max()}"
        )


def read_groundtruth(
    entry: Mapping, num_predicates: int | None = None, where: str = "ground truth"
) -> GroundTruth:
    """Check one image's ground truth (predicates in [0, num_predicates) when given) and collapse duplicate
    (subject, object, predicate) rows, as the reference does (its relations come from a dense tensor)."""
    boxes, labels = read_labelled_boxes(entry, where)
    relations = _field(entry, "relations", 3, "int", where)
    _check_range(relations[:, :2], len(boxes), "relations", "box indices", where)
    if relations.size and relations[:, 2].min() < 0:
        raise EvaluationInputError(f"{where}: field 'relations' has a negative predicate")
    if num_predicates is not None:
        _check_range(relations[:, 2], num_predicates, "relations", "predicates", where)
    return GroundTruth(boxes.astype(np.float64, copy=False), labels, unique_rows(relations, len(boxes)))


def unique_rows(relations: np.ndarray, num_boxes: int) -> np.ndarray:
    """Distinct (subject, object, predicate) rows of [T,3] relations, sorted like np.unique(axis=0)."""
    if len(relations) < 2:
        return relations
    predicate_stride = int(relations[:, 2].max()) + 1
    keys = np.unique((relations[:, 0] * num_boxes + relations[:, 1]) * predicate_stride + relations[:, 2])
    pairs, predicates = np.divmod(keys, predicate_stride)
    return np.stack((pairs // num_boxes, pairs % num_boxes, predicates), axis=1)


def read_prediction(entry: Mapping, num_predicates: int, where: str = "prediction") -> Prediction:
    """Check one image's prediction; `rel_scores` must have `num_predicates` columns."""
    boxes = _field(entry, "boxes", 4, "float", where)
    labels = _field(entry, "labels", None, "int", where)
    scores = _field(entry, "scores", None, "float", where)
    rel_pairs = _field(entry, "rel_pairs", 2, "int", where)
    rel_scores = _field(entry, "rel_scores", num_predicates, "float", where)
    if not len(boxes) == len(labels) == len(scores):
        raise EvaluationInputError(
            f"{where}: {len(boxes)} boxes, {len(labels)} labels and {len(scores)} scores (must be equal)"
        )
    if len(rel_pairs) != len(rel_scores):
        raise EvaluationInputError(
            f"{where}: {len(rel_pairs)} rel_pairs but {len(rel_scores)} rel_scores rows"
        )
    _check_range(rel_pairs, len(boxes), "rel_pairs", "box indices", where)
    return Prediction(boxes, labels, scores, rel_pairs, rel_scores)


def read_labelled_boxes(
    entry: Mapping, where: str, num_classes: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Check `boxes` [n,4] and `labels` [n] (int64, in [0, num_classes) when given) of one image."""
    boxes = _field(entry, "boxes", 4, "float", where)
    labels = _field(entry, "labels", None, "int", where)
    if len(boxes) != len(labels):
        raise EvaluationInputError(f"{where}: {len(boxes)} boxes but {len(labels)} labels")
    if num_classes is not None:
        _check_range(labels, num_classes, "labels", "classes", where)
    return boxes, labels


def read_detections(
    entry: Mapping, where: str = "detections", num_classes: int | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Check one image's detections: (`boxes` [D,4], `labels` [D] int64, `scores` [D])."""
    boxes, labels = read_labelled_boxes(entry, where, num_classes)
    scores = _field(entry, "scores", None, "float", where)
    if len(scores) != len(boxes):
        raise EvaluationInputError(f"{where}: {len(boxes)} boxes but {len(scores)} scores")
    return boxes, labels, scores


def read_image_inputs(
    groundtruth: Mapping, prediction: Mapping, num_predicates: int, image_id: object | None = None
) -> tuple[GroundTruth, Prediction]:
    """One image's checked ground truth and prediction; errors name the image (`image_id`) and the field."""
    where = describe_image(image_id)
    return (
        read_groundtruth(groundtruth, num_predicates, f"{where} ground truth"),
        read_prediction(prediction, num_predicates, f"{where} prediction"),
    )


def describe_image(image_id: object | None) -> str:
    """'image <id>' for error messages ('image' when the caller gave no id)."""
    return "image" if image_id is None else f"image {image_id}"
