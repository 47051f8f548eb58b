"""Checking and normalizing the per-image ground truth that the objectives receive (architecture.md §4).

One dict per image: `labels` [M] long (0-based classes), `boxes` [M,4] normalized (cx, cy, w, h),
`relations` [T,3] long (subject box index, object box index, predicate), 0-based. Other keys (image_id, ...)
are ignored. Bad input raises a ValueError that names the image and the field.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor


@dataclass
class ImageTargets:
    """Ground truth of one image, on the objective's device."""

    labels: Tensor  # [M] long
    boxes: Tensor  # [M,4] float, normalized (cx, cy, w, h)
    relations: Tensor  # [T,3] long (subject, object, predicate)


def _field(target: dict[str, Any], image: int, name: str) -> Tensor:
    if name not in target:
        raise ValueError(f"targets[{image}] has no {name!r} field")
    return torch.as_tensor(target[name])


def _check_range(values: Tensor, upper: int, image: int, what: str) -> None:
    if values.numel() and (values.min() < 0 or values.max() >= upper):
        bad = values[(values < 0) | (values >= upper)][0].item()
        raise ValueError(f"targets[{image}]: {what} {bad} is outside 0..{upper - 1}")


def prepare_targets(
    targets: list[dict[str, Any]],
    num_classes: int,
    num_predicates: int | None,
    device: torch.device,
) -> list[ImageTargets]:
    """Validate the per-image dicts and move them to `device`.

    `num_predicates=None` skips the `relations` field (detector-only objective).
    """
    prepared = []
    for image, target in enumerate(targets):
        labels = _field(target, image, "labels").to(device=device, dtype=torch.long)
        boxes = _field(target, image, "boxes").to(device=device, dtype=torch.float32)
        if labels.dim() != 1:
            raise ValueError(f"targets[{image}]['labels'] must have shape [M], got {tuple(labels.shape)}")
        num_boxes = labels.shape[0]
        if num_boxes == 0:
            boxes = boxes.reshape(0, 4)
        if boxes.shape != (num_boxes, 4):
            raise ValueError(
                f"targets[{image}]['boxes'] must have shape [{num_boxes},4] (one row per label), "
                f"got {tuple(boxes.shape)}"
            )
        if not torch.isfinite(boxes).all():
            raise ValueError(f"targets[{image}]['boxes'] holds a non-finite value")
        _check_range(labels, num_classes, image, "class label")
        relations = labels.new_zeros((0, 3))
        if num_predicates is not None:
            relations = _field(target, image, "relations").to(device=device, dtype=torch.long)
            if relations.numel() == 0:
                relations = relations.reshape(0, 3)
            if relations.dim() != 2 or relations.shape[1] != 3:
                raise ValueError(
                    f"targets[{image}]['relations'] must have shape [T,3] (subject, object, predicate), "
                    f"got {tuple(relations.shape)}"
                )
            _check_range(relations[:, :2], num_boxes, image, "relation box index")
            _check_range(relations[:, 2], num_predicates, image, "predicate")
        prepared.append(ImageTargets(labels=labels, boxes=boxes, relations=relations))
    return prepared
