"""Transforms: DETR resize arithmetic, flips and resizes that keep boxes on their objects, normalization."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from egtr.data.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    ToModelInput,
    eval_transform,
    hflip,
    normalize_image,
    resize,
    resized_shape,
    train_transform,
)


@pytest.mark.parametrize(
    ("width", "height", "size", "max_size", "expected"),
    [
        (640, 480, 800, 1333, (800, 1066)),  # 800 * 640 / 480 = 1066.67, truncated
        (480, 640, 800, 1333, (1066, 800)),
        (2000, 500, 800, 1333, (333, 1332)),  # size = round(1333 * 500 / 2000) = round(333.25)
        (2000, 500, 800, 1334, (334, 1336)),  # round(333.5) = 334 (half to even, as Python's round)
        (2000, 500, 800, 1330, (332, 1328)),  # round(332.5) = 332
        (800, 1200, 800, 1333, (1200, 800)),  # already at size: unchanged
        (500, 500, 800, None, (800, 800)),
        (1000, 600, 600, 1000, (600, 1000)),  # the FPS setting
    ],
)
def test_resized_shape_matches_hand_computed_detr_sizes(width, height, size, max_size, expected):
    assert resized_shape(width, height, size, max_size) == expected


@given(
    width=st.integers(1, 3000),
    height=st.integers(1, 3000),
    size=st.integers(1, 1000),
    max_size=st.one_of(st.none(), st.integers(1, 2000)),
)
def test_resized_shape_keeps_the_aspect_ratio(width, height, size, max_size):
    new_height, new_width = resized_shape(width, height, size, max_size)
    shorter, longer = (new_width, new_height) if width <= height else (new_height, new_width)
    ratio = max(width, height) / min(width, height)
    assert -1e-9 <= shorter * ratio - longer < 1 + 1e-9  # the longer side is truncated
    if max_size is None or ratio * size <= max_size:
        assert shorter == size


def target_with(boxes, width, height):
    boxes = torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4)
    return {
        "boxes": boxes,
        "labels": torch.arange(len(boxes)),
        "relations": torch.tensor([[0, len(boxes) - 1, 2]]),
        "image_id": "7",
        "orig_size": torch.tensor([height, width]),
        "size": torch.tensor([height, width]),
    }


@st.composite
def image_with_box(draw):
    """A black image with one white filled rectangle, and that rectangle's xyxy box (integer)."""
    width, height = draw(st.integers(8, 64)), draw(st.integers(8, 64))
    x0, y0 = draw(st.integers(0, width - 4)), draw(st.integers(0, height - 4))
    x1, y1 = draw(st.integers(x0 + 4, width)), draw(st.integers(y0 + 4, height))
    pixels = np.zeros((height, width, 3), dtype=np.uint8)
    pixels[y0:y1, x0:x1] = 255
    return Image.fromarray(pixels), [x0, y0, x1, y1]


def bright_box(image: Image.Image, threshold: int = 128) -> list[int]:
    """xyxy (pixel edges) of the pixels brighter than `threshold`."""
    ys, xs = np.nonzero(np.asarray(image.convert("L")) > threshold)
    return [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]


@settings(max_examples=60, deadline=None)
@given(sample=image_with_box())
def test_hflip_moves_the_box_with_the_object(sample):
    image, box = sample
    target = target_with([box, [0, 0, 1, 1]], image.width, image.height)
    flipped_image, flipped = hflip(image, target)
    assert flipped["boxes"][0].tolist() == bright_box(flipped_image)
    assert torch.equal(flipped["relations"], target["relations"]) and torch.equal(
        flipped["labels"], target["labels"]
    )
    back_image, back = hflip(flipped_image, flipped)
    assert torch.equal(back["boxes"], target["boxes"])
    assert np.array_equal(np.asarray(back_image), np.asarray(image))


@settings(max_examples=60, deadline=None)
@given(sample=image_with_box(), size=st.integers(8, 96), max_size=st.one_of(st.none(), st.integers(16, 160)))
def test_resize_moves_the_box_with_the_object_and_keeps_normalized_boxes(sample, size, max_size):
    image, box = sample
    target = target_with([box], image.width, image.height)
    resized_image, resized = resize(image, target, size, max_size)
    new_height, new_width = resized_shape(image.width, image.height, size, max_size)
    assert resized_image.size == (new_width, new_height)
    assert resized["size"].tolist() == [new_height, new_width] and resized["orig_size"].tolist() == [
        image.height,
        image.width,
    ]
    scale = np.array([new_width / image.width, new_height / image.height] * 2)
    np.testing.assert_allclose(resized["boxes"][0].numpy(), np.array(box) * scale, rtol=1e-6)
    # bilinear edges blur by about a source pixel: the bright region stays within that of the box
    resized_box = resized["boxes"][0].numpy()
    if min(resized_box[2:] - resized_box[:2]) >= 3:  # smaller boxes fade below the brightness threshold
        tolerance = 1 + max(scale)
        assert np.abs(np.array(bright_box(resized_image)) - resized_box).max() <= tolerance
    _, before = ToModelInput()(image, target)
    _, after = ToModelInput()(resized_image, resized)
    torch.testing.assert_close(after["boxes"], before["boxes"], rtol=1e-5, atol=1e-6)
    assert torch.equal(after["relations"], target["relations"])


def test_normalize_image_uses_the_imagenet_constants():
    image = Image.new("RGB", (3, 2), (255, 0, 128))
    tensor = normalize_image(image)
    assert tensor.shape == (3, 2, 3) and tensor.dtype == torch.float32
    expected = [(v / 255 - m) / s for v, m, s in zip((255, 0, 128), IMAGENET_MEAN, IMAGENET_STD)]
    torch.testing.assert_close(tensor[:, 1, 2], torch.tensor(expected))
    assert torch.equal(
        normalize_image(image.convert("L").convert("RGB")), normalize_image(image.convert("L"))
    )


def test_to_model_input_gives_normalized_cxcywh():
    image = Image.new("RGB", (40, 20))
    _, target = ToModelInput()(image, target_with([[0, 0, 40, 20], [10, 5, 20, 15]], 40, 20))
    torch.testing.assert_close(target["boxes"], torch.tensor([[0.5, 0.5, 1.0, 1.0], [0.375, 0.5, 0.25, 0.5]]))


def test_train_transform_sizes_flips_and_determinism():
    image = Image.new("RGB", (60, 40))
    image.paste((255, 255, 255), (0, 0, 10, 40))
    scales = (20, 24, 28)
    outputs = set()
    flips = 0
    rng = random.Random(0)
    transform = train_transform(scales=scales, max_size=50, mid_scales=(10, 12), rng=rng)
    for _ in range(60):
        pixels, target = transform(image, target_with([[0, 0, 10, 40]], 60, 40))
        height, width = pixels.shape[1:]
        assert [height, width] == target["size"].tolist() and height in scales
        outputs.add((height, width))
        flips += bool(target["boxes"][0, 0] > 0.5)
        assert target["relations"].tolist() == [[0, 0, 2]] and target["image_id"] == "7"
    assert outputs == {(20, 30), (24, 36), (28, 42)} and 10 < flips < 50
    first = train_transform(scales=scales, rng=random.Random(3))(image, target_with([[0, 0, 10, 40]], 60, 40))
    second = train_transform(scales=scales, rng=random.Random(3))(
        image, target_with([[0, 0, 10, 40]], 60, 40)
    )
    assert torch.equal(first[0], second[0]) and torch.equal(first[1]["boxes"], second[1]["boxes"])


def test_train_transform_without_mid_scales_and_eval_transform():
    image = Image.new("RGB", (64, 32))
    pixels, _ = train_transform(scales=(16,), mid_scales=(), flip_prob=0.0)(image, target_with([], 64, 32))
    assert pixels.shape == (3, 16, 32)
    pixels, target = eval_transform()(image, target_with([[0, 0, 64, 32]], 64, 32))
    assert pixels.shape == (3, 666, 1332) and target["size"].tolist() == [666, 1332]  # round(666.5) = 666
    pixels, _ = eval_transform(600, 1000)(Image.new("RGB", (100, 80)), target_with([], 100, 80))
    assert pixels.shape == (3, 600, 750)


def test_normalize_image_equals_the_whole_image_formula_for_every_value():
    values = np.arange(256, dtype=np.uint8)
    rgb = np.stack([values, values[::-1], np.roll(values, 7)], -1).reshape(16, 16, 3)
    for image in (
        Image.fromarray(rgb),
        Image.fromarray(rgb).convert("L"),
        Image.fromarray(rgb).convert("RGBA"),
    ):
        pixels = np.asarray(image.convert("RGB"), dtype=np.float32) / np.float32(255)
        whole = (pixels - np.array(IMAGENET_MEAN, np.float32)) / np.array(IMAGENET_STD, np.float32)
        assert torch.equal(normalize_image(image), torch.from_numpy(whole.transpose(2, 0, 1).copy()))
