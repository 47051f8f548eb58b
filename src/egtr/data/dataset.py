"""Torch datasets: records (from any layout) or the synthetic world, through a transform.

An item is `{"pixel_values": float [3,H,W], "target": {"labels": long [M], "boxes": float [M,4]
(cx, cy, w, h) normalized by the transformed image size, "relations": long [T,3], "image_id": str,
"orig_size": long [2] (h, w) of the image read, "size": long [2] (h, w) after the transform}}`, or None
when the image cannot be read (a warning names file and image id; `collate` drops and counts it).
Pixels are read by the one image reader (`egtr.data.images`, default: as the official loader).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image

from egtr.data.images import ImageReadError, ImageReading
from egtr.data.record import SceneGraphRecord, SceneGraphSplit
from egtr.data.relation_filters import single_predicate_per_pair
from egtr.data.synthetic.world import SyntheticWorld
from egtr.data.transforms import ToModelInput, Transform

logger = logging.getLogger(__name__)


def read_rgb_image(record: SceneGraphRecord, reading: ImageReading | None = None) -> Image.Image | None:
    """The record's image as RGB (`reading`, default: as the official loader), or None (with a warning)
    when it cannot be read."""
    try:
        return (reading or ImageReading()).read(record.image_path, str(record.image_path))
    except ImageReadError as error:
        logger.warning(
            "skipping image %s (image id %s): %s", record.image_path, record.image_id, error.reason
        )
        return None


def initial_target(record: SceneGraphRecord, image: Image.Image, relations: np.ndarray) -> dict[str, Any]:
    """Target before any transform; boxes are clipped to the image read, as the COCO preparation of Hugging
    Face's `DetrFeatureExtractor` does (transformers 4.18.0, the version the official code runs;
    architecture.md §10).

    `orig_size` is the size of the image read, which the official pipeline uses even when the annotated
    size differs (`egtr data check` reports such images).
    """
    boxes = torch.from_numpy(record.boxes.copy())
    boxes[:, 0::2] = boxes[:, 0::2].clamp(0, image.width)
    boxes[:, 1::2] = boxes[:, 1::2].clamp(0, image.height)
    size = torch.tensor([image.height, image.width], dtype=torch.long)
    return {
        "boxes": boxes,
        "labels": torch.from_numpy(record.labels.copy()),
        "relations": torch.from_numpy(relations.copy()),
        "image_id": record.image_id,
        "orig_size": size,
        "size": size.clone(),
    }


class SceneGraphDataset(torch.utils.data.Dataset):
    """Records of a split through `transform` (default: no resize, only `ToModelInput`).

    `single_predicate_per_pair` keeps one random predicate per (subject, object) pair at every access
    (official Open Images `filter_multiple_rels`, SGB train `filter_duplicate_rels`), drawn from `rng`
    (default: the `random` module, reseeded per DataLoader worker by torch). `reading`: how pixels are
    read (default: as the official loader).
    """

    def __init__(
        self,
        split_or_records: SceneGraphSplit | Sequence[SceneGraphRecord],
        transform: Transform | None = None,
        *,
        single_predicate_per_pair: bool = False,
        rng: random.Random | None = None,
        reading: ImageReading | None = None,
    ):
        is_split = isinstance(split_or_records, SceneGraphSplit)
        self.records = list(split_or_records.records if is_split else split_or_records)
        self.transform = transform or ToModelInput()
        self.single_predicate_per_pair = single_predicate_per_pair
        self.rng = rng or random
        self.reading = reading or ImageReading()
        self._size_warned: set[str] = set()

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict[str, Any] | None:
        record = self.records[index]
        image = read_rgb_image(record, self.reading)
        if image is None:
            return None
        self._warn_if_resized(record, image)
        relations = record.relations
        if self.single_predicate_per_pair:
            relations = single_predicate_per_pair(relations, self.rng)
        pixel_values, target = self.transform(image, initial_target(record, image, relations))
        return {"pixel_values": pixel_values, "target": target}

    def _warn_if_resized(self, record: SceneGraphRecord, image: Image.Image) -> None:
        """Warn once per image whose file size differs from the annotated size."""
        if (image.width, image.height) == (
            record.width,
            record.height,
        ) or record.image_id in self._size_warned:
            return
        self._size_warned.add(record.image_id)
        logger.warning(
            "image %s (image id %s) is %dx%d but annotated as %dx%d; using the image's size",
            record.image_path,
            record.image_id,
            image.width,
            image.height,
            record.width,
            record.height,
        )


class SyntheticDataset(torch.utils.data.Dataset):
    """Images `start`..`start + num_images - 1` of a `SyntheticWorld`, generated at every access."""

    def __init__(
        self, world: SyntheticWorld, num_images: int, transform: Transform | None = None, start: int = 0
    ):
        self.world = world
        self.num_images = num_images
        self.start = start
        self.transform = transform or ToModelInput()

    def __len__(self) -> int:
        return self.num_images

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not 0 <= index < self.num_images:
            raise IndexError(f"index {index} outside 0..{self.num_images - 1}")
        image, record = self.world.sample(self.start + index)
        pixel_values, target = self.transform(image, initial_target(record, image, record.relations))
        return {"pixel_values": pixel_values, "target": target}
