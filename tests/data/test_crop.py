"""The detector pre-training crop (DETR's RandomSizeCrop): boxes cut at the region, vanished boxes dropped
with their labels, their relations dropped and the others renumbered; hand-made cases."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from PIL import Image

from egtr.data.transforms import (
    Compose,
    RandomSelect,
    RandomSizeCrop,
    crop,
    train_transform,
)
from egtr.engine.settings import preset
from egtr.sizes import DETECTOR_CROP


def target(boxes, labels, relations, width, height):
    return {
        "boxes": torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4),
        "labels": torch.tensor(labels, dtype=torch.long),
        "relations": torch.tensor(relations, dtype=torch.long).reshape(-1, 3),
        "image_id": "x",
        "orig_size": torch.tensor([height, width]),
        "size": torch.tensor([height, width]),
    }


def picture(width=100, height=80):
    pixels = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
    return Image.fromarray(pixels)


def test_crop_cuts_drops_and_renumbers_by_hand():
    image = picture()
    boxes = [
        [10, 10, 30, 30],  # 0: partly left of the region -> [0, 2, 10, 22]
        [50, 20, 90, 60],  # 1: cut at the right and bottom -> [30, 12, 60, 50]
        [0, 0, 5, 5],  # 2: outside -> no area, dropped
        [70, 70, 95, 78],  # 3: below the region -> height 0, dropped
        [25, 30, 45, 40],  # 4: inside -> [5, 22, 25, 32], becomes box 2
    ]
    relations = [[0, 1, 0], [1, 2, 1], [3, 0, 2], [4, 1, 3], [1, 0, 4], [2, 3, 5], [4, 0, 1]]
    cropped, out = crop(image, target(boxes, [1, 2, 3, 4, 5], relations, 100, 80), 8, 20, 50, 60)
    assert cropped.size == (60, 50) and out["size"].tolist() == [50, 60]
    np.testing.assert_array_equal(np.asarray(cropped), np.asarray(image)[8:58, 20:80])
    assert out["boxes"].tolist() == [[0, 2, 10, 22], [30, 12, 60, 50], [5, 22, 25, 32]]
    assert out["labels"].tolist() == [1, 2, 5]
    # relations with box 2 or 3 are gone; box 4 is now box 2; order and predicates kept
    assert out["relations"].tolist() == [[0, 1, 0], [2, 1, 3], [1, 0, 4], [2, 0, 1]]
    assert out["relations"].dtype == torch.long and out["orig_size"].tolist() == [80, 100]


def test_crop_that_keeps_nothing_and_an_image_without_relations():
    _, out = crop(picture(), target([[0, 0, 10, 10]], [3], [[0, 0, 1]], 100, 80), 40, 40, 20, 20)
    assert out["boxes"].shape == (0, 4) and out["labels"].shape == (0,) and out["relations"].shape == (0, 3)
    _, out = crop(picture(), target([[0, 0, 10, 10]], [3], [], 100, 80), 0, 0, 20, 20)
    assert out["boxes"].tolist() == [[0, 0, 10, 10]] and out["relations"].shape == (0, 3)


def test_random_size_crop_draws_as_detr_does():
    image = picture(700, 500)
    transform = RandomSizeCrop(384, 600, rng=random.Random(3))
    draws = random.Random(3)
    width, height = draws.randint(384, 600), draws.randint(384, 500)
    top, left = draws.randint(0, 500 - height), draws.randint(0, 700 - width)
    cropped, out = transform(image, target([[0, 0, 700, 500]], [0], [], 700, 500))
    assert cropped.size == (width, height)
    assert out["boxes"].tolist() == [[0, 0, width, height]]  # the whole-image box, cut to the region
    np.testing.assert_array_equal(
        np.asarray(cropped), np.asarray(image)[top : top + height, left : left + width]
    )


def test_sides_below_the_minimum_are_kept_whole():
    cropped, _ = RandomSizeCrop(384, 600, rng=random.Random(0))(picture(100, 80), target([], [], [], 100, 80))
    assert cropped.size == (100, 80)  # the official code raises on such an image
    with pytest.raises(ValueError, match="min_size <= max_size"):
        RandomSizeCrop(600, 384)


def second_branch(transform: Compose) -> list:
    select = next(step for step in transform.transforms if isinstance(step, RandomSelect))
    return [type(step) for step in select.second.transforms]


def test_only_the_detector_phases_crop_in_the_second_branch():
    with_crop = train_transform(crop_sizes=DETECTOR_CROP)
    assert RandomSizeCrop in second_branch(with_crop) and RandomSizeCrop not in second_branch(
        train_transform()
    )
    for phase in ("detector", "detector_finetune"):
        assert preset("visual_genome", phase).train_crop == [384, 600]
    for phase in ("egtr", "finetune"):
        assert preset("visual_genome", phase).train_crop == []


def test_the_augmentation_with_crop_keeps_relations_on_kept_boxes():
    rng = random.Random(0)
    transform = train_transform(scales=[64], max_size=96, mid_scales=[80], crop_sizes=(40, 60), rng=rng)
    boxes = [[2, 2, 30, 30], [40, 40, 78, 78], [60, 5, 78, 20]]
    for _ in range(30):
        _, out = transform(
            picture(80, 80), target(boxes, [0, 1, 2], [[0, 1, 0], [1, 2, 1], [2, 0, 2]], 80, 80)
        )
        kept = len(out["labels"])
        assert out["boxes"].shape == (kept, 4) and (out["boxes"][:, 2:] > 0).all()
        assert ((out["relations"][:, :2] >= 0) & (out["relations"][:, :2] < kept)).all()
