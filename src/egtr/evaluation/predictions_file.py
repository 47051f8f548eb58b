"""Saved per-image predictions: one compressed .npz, safe to load (no pickle).

Layout (version 1): per-image arrays concatenated over images, with offsets [n+1] into them.
  format ("egtr-predictions"), version (1), image_ids [n] str,
  object_offsets [n+1], boxes [sum K,4] float32, labels [sum K] int64, scores [sum K] float32,
  pair_offsets [n+1], rel_pairs [sum P,2] int32, rel_scores [sum P,R] float32,
  and, when every image has a `detections` entry: detection_offsets [n+1], detection_boxes [sum D,4],
  detection_labels [sum D], detection_scores [sum D].
A prediction dict is architecture.md §4's, optionally with `detections` {boxes, labels, scores}.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

import numpy as np

from egtr.evaluation.inputs import EvaluationInputError, read_detections, read_prediction, to_numpy
from egtr.files import write_atomically

FORMAT_NAME = "egtr-predictions"
FORMAT_VERSION = 1
OBJECT_FIELDS = {"boxes": np.float32, "labels": np.int64, "scores": np.float32}
PAIR_FIELDS = {"rel_pairs": np.int32, "rel_scores": np.float32}
DETECTION_FIELDS = {"boxes": np.float32, "labels": np.int64, "scores": np.float32}
GROUPS = {  # offsets array -> {array name in the file: (field in the prediction dict, dtype)}
    "object_offsets": {name: (name, dtype) for name, dtype in OBJECT_FIELDS.items()},
    "pair_offsets": {name: (name, dtype) for name, dtype in PAIR_FIELDS.items()},
    "detection_offsets": {f"detection_{name}": (name, dtype) for name, dtype in DETECTION_FIELDS.items()},
}
TRAILING_SHAPES = {"boxes": (4,), "rel_pairs": (2,), "detection_boxes": (4,)}


class PredictionsFileError(ValueError):
    """The predictions file is malformed; the message names the file and the field."""


def write_predictions(path: str | Path, items: Iterable[tuple[str, Mapping]]) -> Path:
    """Write (image_id, prediction) pairs to `path` atomically (temporary file, then rename).

    Every prediction is checked first (architecture.md §4 fields; `detections` in all images or in none).
    """
    path = Path(path)
    image_ids: list[str] = []
    images: list[dict[str, np.ndarray]] = []
    for image_id, prediction in items:
        image_ids.append(str(image_id))
        images.append(_checked_arrays(prediction, f"{path}: image {image_id}"))
    with_detections = {"detection_boxes" in image for image in images}
    if len(with_detections) > 1:
        raise PredictionsFileError(f"{path}: either every prediction has 'detections' or none does")
    num_predicates = next((image["rel_scores"].shape[1] for image in images if image["rel_scores"].size), 0)
    for image_id, image in zip(image_ids, images):
        if image["rel_scores"].size and image["rel_scores"].shape[1] != num_predicates:
            raise PredictionsFileError(
                f"{path}: image {image_id}: field 'rel_scores' has {image['rel_scores'].shape[1]} "
                f"predicates, the first image {num_predicates}"
            )
    arrays = {"format": np.array(FORMAT_NAME), "version": np.array(FORMAT_VERSION)}
    arrays["image_ids"] = np.array(image_ids, dtype=str).reshape(-1)
    for offsets_name, fields in GROUPS.items():
        if offsets_name == "detection_offsets" and with_detections != {True}:
            continue
        first = next(iter(fields))
        arrays[offsets_name] = np.cumsum([0] + [len(image[first]) for image in images], dtype=np.int64)
        for name, (_, dtype) in fields.items():
            trailing = (num_predicates,) if name == "rel_scores" else TRAILING_SHAPES.get(name, ())
            parts = [image[name].reshape(-1, *trailing) for image in images]
            arrays[name] = np.concatenate(parts).astype(dtype) if parts else np.zeros((0, *trailing), dtype)
    return write_atomically(path, lambda stream: np.savez_compressed(stream, **arrays))


def _checked_arrays(prediction: Mapping, where: str) -> dict[str, np.ndarray]:
    """File arrays of one prediction, checked by the evaluators' input reader."""
    rel_scores = to_numpy(prediction.get("rel_scores", np.zeros((0, 0))))
    num_predicates = rel_scores.shape[1] if rel_scores.ndim == 2 else 0
    try:
        checked = read_prediction(prediction, num_predicates, where)
        arrays = {name: getattr(checked, name) for name in (*OBJECT_FIELDS, *PAIR_FIELDS)}
        if "detections" in prediction:
            boxes, labels, scores = read_detections(prediction["detections"], f"{where} detections")
            arrays.update(detection_boxes=boxes, detection_labels=labels, detection_scores=scores)
    except EvaluationInputError as error:
        raise PredictionsFileError(str(error)) from error
    return arrays


class PredictionsFile:
    """A loaded, checked predictions file: `image_ids`, `len()`, iteration over (image_id, prediction)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        try:
            with np.load(self.path, allow_pickle=False) as archive:
                self._arrays = {name: archive[name] for name in archive.files}
        except (OSError, ValueError, EOFError) as error:
            raise PredictionsFileError(
                f"{self.path}: not a readable .npz predictions file ({error})"
            ) from error
        self._check_header()
        self.image_ids: list[str] = [str(image_id) for image_id in self._arrays["image_ids"]]
        for offsets_name, fields in GROUPS.items():
            if offsets_name != "detection_offsets" or self.has_detections:
                self._require(offsets_name, *fields)
                self._check_group(offsets_name, list(fields))
        self._check_pair_indices()

    @property
    def has_detections(self) -> bool:
        return "detection_offsets" in self._arrays

    @property
    def num_predicates(self) -> int:
        """R, the width of `rel_scores` (0 when no image has a pair)."""
        return int(self._arrays["rel_scores"].shape[1])

    def __len__(self) -> int:
        return len(self.image_ids)

    def __iter__(self) -> Iterator[tuple[str, dict]]:
        for index, image_id in enumerate(self.image_ids):
            yield image_id, self.prediction(index)

    def prediction(self, index: int) -> dict:
        """The prediction dict of the index-th image (numpy arrays; int64 indices)."""
        prediction = self._slice("object_offsets", index)
        prediction.update(self._slice("pair_offsets", index))
        prediction["rel_pairs"] = prediction["rel_pairs"].astype(np.int64)
        if self.has_detections:
            prediction["detections"] = self._slice("detection_offsets", index)
        return prediction

    def _slice(self, offsets_name: str, index: int) -> dict:
        offsets = self._arrays[offsets_name]
        start, end = offsets[index], offsets[index + 1]
        return {field: self._arrays[name][start:end] for name, (field, _) in GROUPS[offsets_name].items()}

    def _check_header(self) -> None:
        self._require("format", "version", "image_ids")
        found = (str(self._arrays["format"]), str(self._arrays["version"]))
        if found != (FORMAT_NAME, str(FORMAT_VERSION)):
            raise PredictionsFileError(
                f"{self.path}: field 'format'/'version' is {found[0]}/{found[1]}, "
                f"expected {FORMAT_NAME}/{FORMAT_VERSION}"
            )
        image_ids = self._arrays["image_ids"]
        if image_ids.ndim != 1 or image_ids.dtype.kind != "U":
            raise PredictionsFileError(f"{self.path}: field 'image_ids' must be a 1-D array of strings")
        unique, counts = np.unique(image_ids, return_counts=True)
        if (counts > 1).any():
            raise PredictionsFileError(
                f"{self.path}: field 'image_ids' repeats image {unique[counts > 1][0]}"
            )

    def _require(self, *names: str) -> None:
        for name in names:
            if name not in self._arrays:
                raise PredictionsFileError(f"{self.path}: missing field {name!r}")

    def _check_group(self, offsets_name: str, names: list[str]) -> None:
        offsets = self._arrays[offsets_name]
        rows = len(self._arrays[names[0]])
        if not (
            offsets.ndim == 1
            and offsets.dtype.kind in "iu"
            and len(offsets) == len(self.image_ids) + 1
            and offsets[0] == 0
            and (np.diff(offsets) >= 0).all()
            and offsets[-1] == rows
        ):
            raise PredictionsFileError(
                f"{self.path}: field {offsets_name!r} must be {len(self.image_ids) + 1} non-decreasing "
                f"integer offsets from 0 to {rows}"
            )
        for name in names:
            array = self._arrays[name]
            trailing = TRAILING_SHAPES.get(name, array.shape[1:2] if name == "rel_scores" else ())
            if (
                len(array) != rows
                or array.shape[1:] != trailing
                or (name == "rel_scores" and array.ndim != 2)
            ):
                raise PredictionsFileError(f"{self.path}: field {name!r} has shape {list(array.shape)}")
            if array.dtype.kind not in "iuf" or (array.dtype.kind == "f" and not np.isfinite(array).all()):
                raise PredictionsFileError(f"{self.path}: field {name!r} must hold finite numbers")

    def _check_pair_indices(self) -> None:
        objects_per_image = np.diff(self._arrays["object_offsets"])
        image_of_pair = np.repeat(np.arange(len(objects_per_image)), np.diff(self._arrays["pair_offsets"]))
        pairs = self._arrays["rel_pairs"]
        bad = (pairs < 0).any(axis=1) | (pairs >= objects_per_image[image_of_pair, None]).any(axis=1)
        if bad.any():
            image = self.image_ids[image_of_pair[np.argmax(bad)]]
            raise PredictionsFileError(
                f"{self.path}: field 'rel_pairs' of image {image} refers to a missing box"
            )


def read_predictions(path: str | Path) -> Iterator[tuple[str, dict]]:
    """Yield (image_id, prediction dict) from a predictions file, in file order."""
    yield from PredictionsFile(path)
