"""Image + target transforms as the official EGTR pipeline applies them, and the one place that normalizes
images (architecture.md §5.10). The official pipeline is DETR's transforms as the official
`model/transform.py` copies them (architecture.md §10).

A transform takes and returns `(image, target)`: a PIL RGB image and a dict with `boxes` float [M,4]
(x0, y0, x1, y1) in pixels of the current image, `labels` [M], `relations` [T,3], `image_id`,
`orig_size` and `size` (long [2], (h, w)). The last step, `ToModelInput`, turns the image into a
normalized float tensor [3,H,W] and the boxes into (cx, cy, w, h) normalized by the image size.
Relations are index-based: flips and resizes leave them untouched (no left/right predicate swap). A crop
(detector pre-training only, as officially) cuts boxes at its border and drops the boxes left without
area, as DETR does; relations of dropped boxes are dropped and the others renumbered.

Random choices use `rng` (a `random.Random`), by default the `random` module, which torch's DataLoader
reseeds in every worker.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from egtr.boxes import xyxy_to_cxcywh
from egtr.sizes import EVAL_MAX_SIZE, EVAL_SIZE, MID_SCALES, TRAIN_MAX_SIZE, TRAIN_SCALES

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

Target = dict[str, Any]
Transform = Callable[[Image.Image, Target], tuple[Any, Target]]


def normalize_image(image: Image.Image) -> Tensor:
    """PIL image -> float32 [3,H,W]: RGB in [0, 1], minus the ImageNet mean, divided by its std.

    Computed in numpy (torch's intra-op threads only slow such small element-wise work down), channel by
    channel into the output, in float32: the same numbers as (rgb / 255 - mean) / std over the whole
    image, without its four float temporaries (13 MB each at 800x1333).
    """
    rgb = np.asarray(image.convert("RGB"))
    normalized = np.empty((3, *rgb.shape[:2]), np.float32)
    for channel, (mean, std) in enumerate(zip(IMAGENET_MEAN, IMAGENET_STD)):
        values = normalized[channel]
        np.divide(rgb[:, :, channel], np.float32(255), out=values, dtype=np.float32)
        np.subtract(values, np.float32(mean), out=values)
        np.divide(values, np.float32(std), out=values)
    return torch.from_numpy(normalized)


def resized_shape(width: int, height: int, size: int, max_size: int | None = None) -> tuple[int, int]:
    """(new height, new width) with the shorter side at `size` and the longer at most `max_size`.

    DETR's arithmetic exactly: when max/min * size > max_size the size becomes
    int(round(max_size * min / max)); the longer side is int(size * long / short), truncated.
    """
    if max_size is not None:
        shorter, longer = float(min(width, height)), float(max(width, height))
        if longer / shorter * size > max_size:
            size = round(max_size * shorter / longer)  # int(round(...)) in DETR
    if (width <= height and width == size) or (height <= width and height == size):
        return height, width
    if width < height:
        return int(size * height / width), size
    return size, int(size * width / height)


def hflip(image: Image.Image, target: Target) -> tuple[Image.Image, Target]:
    """Mirror the image left-right; box x-coordinates become width - x (x0 and x1 swap roles)."""
    width = image.width
    boxes = target["boxes"]
    flipped = torch.stack((width - boxes[:, 2], boxes[:, 1], width - boxes[:, 0], boxes[:, 3]), dim=-1)
    return image.transpose(Image.Transpose.FLIP_LEFT_RIGHT), {**target, "boxes": flipped}


def resize(
    image: Image.Image, target: Target, size: int, max_size: int | None = None
) -> tuple[Image.Image, Target]:
    """Bilinear resize (PIL) to `resized_shape`; boxes scale by the per-axis ratios."""
    new_height, new_width = resized_shape(image.width, image.height, size, max_size)
    resized = image.resize((new_width, new_height), Image.Resampling.BILINEAR)
    ratios = torch.tensor(
        [new_width / image.width, new_height / image.height] * 2, dtype=target["boxes"].dtype
    )
    return resized, {
        **target,
        "boxes": target["boxes"] * ratios,
        "size": torch.tensor([new_height, new_width], dtype=torch.long),
    }


def crop(
    image: Image.Image, target: Target, top: int, left: int, height: int, width: int
) -> tuple[Image.Image, Target]:
    """The region (top, left, height, width) of the image. Boxes move by (left, top) and are cut at the
    region; boxes left without width or height are dropped with their labels, relations that involve a
    dropped box are dropped, and the remaining relations point at the kept boxes' new positions."""
    boxes = target["boxes"] - torch.tensor([left, top, left, top], dtype=target["boxes"].dtype)
    limit = torch.tensor([width, height], dtype=boxes.dtype)
    corners = torch.minimum(boxes.reshape(-1, 2, 2), limit).clamp(min=0)
    keep = (corners[:, 1] > corners[:, 0]).all(dim=1)
    new_index = torch.full((len(keep),), -1, dtype=torch.long)
    new_index[keep] = torch.arange(int(keep.sum()))
    relations = target["relations"]
    if len(relations):
        kept_relations = keep[relations[:, 0]] & keep[relations[:, 1]]
        relations = relations[kept_relations]
        relations = torch.stack((new_index[relations[:, 0]], new_index[relations[:, 1]], relations[:, 2]), 1)
    cropped = image.crop((left, top, left + width, top + height))
    return cropped, {
        **target,
        "boxes": corners.reshape(-1, 4)[keep],
        "labels": target["labels"][keep],
        "relations": relations.to(target["relations"].dtype),
        "size": torch.tensor([height, width], dtype=torch.long),
    }


class Compose:
    def __init__(self, transforms: Sequence[Transform]):
        self.transforms = list(transforms)

    def __call__(self, image: Image.Image, target: Target) -> tuple[Any, Target]:
        for transform in self.transforms:
            image, target = transform(image, target)
        return image, target


class RandomHorizontalFlip:
    def __init__(self, p: float = 0.5, rng: random.Random | None = None):
        self.p = p
        self.rng = rng or random

    def __call__(self, image: Image.Image, target: Target) -> tuple[Image.Image, Target]:
        if self.rng.random() < self.p:
            return hflip(image, target)
        return image, target


class RandomResize:
    """Resize with the shorter side drawn uniformly from `sizes` (no draw when there is one size)."""

    def __init__(self, sizes: Sequence[int], max_size: int | None = None, rng: random.Random | None = None):
        if not sizes:
            raise ValueError("RandomResize needs at least one size")
        self.sizes = list(sizes)
        self.max_size = max_size
        self.rng = rng or random

    def __call__(self, image: Image.Image, target: Target) -> tuple[Image.Image, Target]:
        size = self.sizes[0] if len(self.sizes) == 1 else self.rng.choice(self.sizes)
        return resize(image, target, size, self.max_size)


class RandomSizeCrop:
    """DETR's RandomSizeCrop: width uniform in [min_size, min(W, max_size)], height likewise, then a
    uniformly placed region of that size (`crop`). An image side below `min_size` is kept whole (the
    official code raises there)."""

    def __init__(self, min_size: int, max_size: int, rng: random.Random | None = None):
        if not 0 < min_size <= max_size:
            raise ValueError(f"RandomSizeCrop needs 0 < min_size <= max_size, got {min_size}, {max_size}")
        self.min_size, self.max_size = min_size, max_size
        self.rng = rng or random

    def __call__(self, image: Image.Image, target: Target) -> tuple[Image.Image, Target]:
        width = self.rng.randint(min(self.min_size, image.width), min(image.width, self.max_size))
        height = self.rng.randint(min(self.min_size, image.height), min(image.height, self.max_size))
        top = self.rng.randint(0, image.height - height)
        left = self.rng.randint(0, image.width - width)
        return crop(image, target, top, left, height, width)


class RandomSelect:
    """`first` with probability p, else `second`."""

    def __init__(self, first: Transform, second: Transform, p: float = 0.5, rng: random.Random | None = None):
        self.first, self.second, self.p = first, second, p
        self.rng = rng or random

    def __call__(self, image: Image.Image, target: Target) -> tuple[Any, Target]:
        if self.rng.random() < self.p:
            return self.first(image, target)
        return self.second(image, target)


class ToModelInput:
    """Final step: normalized image tensor [3,H,W]; boxes -> (cx, cy, w, h) / (W, H, W, H)."""

    def __call__(self, image: Image.Image, target: Target) -> tuple[Tensor, Target]:
        scale = torch.tensor([image.width, image.height] * 2, dtype=torch.float32)
        boxes = xyxy_to_cxcywh(target["boxes"].to(torch.float32)) / scale
        return normalize_image(image), {**target, "boxes": boxes}


def train_transform(
    scales: Sequence[int] = TRAIN_SCALES,
    max_size: int | None = TRAIN_MAX_SIZE,
    mid_scales: Sequence[int] = MID_SCALES,
    flip_prob: float = 0.5,
    rng: random.Random | None = None,
    crop_sizes: Sequence[int] | None = None,
) -> Compose:
    """Training augmentation: HFlip(flip_prob); then with p=0.5 RandomResize(scales, max_size), else
    RandomResize(mid_scales, no max) -> [RandomSizeCrop(*crop_sizes)] -> RandomResize(scales, max_size).
    EGTR training (official): no crop; detector pre-training (official): crop_sizes DETECTOR_CROP. Empty
    `mid_scales` keeps only the first branch."""
    direct = RandomResize(scales, max_size, rng)
    steps: list[Transform] = [RandomHorizontalFlip(flip_prob, rng)]
    if mid_scales:
        second: list[Transform] = [RandomResize(mid_scales, None, rng)]
        if crop_sizes:
            second.append(RandomSizeCrop(*crop_sizes, rng=rng))
        steps.append(RandomSelect(direct, Compose([*second, direct]), 0.5, rng))
    else:
        steps.append(direct)
    return Compose([*steps, ToModelInput()])


def eval_transform(size: int = EVAL_SIZE, max_size: int | None = EVAL_MAX_SIZE) -> Compose:
    """Evaluation preprocessing: shorter side `size`, longer at most `max_size` (FPS setting: 600/1000)."""
    return Compose([RandomResize([size], max_size), ToModelInput()])
