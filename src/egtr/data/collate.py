"""Batching: padding to a common size with pixel masks, and dense relation targets.

A sample is `{"pixel_values": float [3,H,W], "target": dict}` or None (an unreadable image).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor


def collate(samples: list[dict[str, Any] | None], share_lone_image: bool = False) -> dict[str, Any]:
    """Stack samples into a batch, dropping None samples and counting them.

    Returns `pixel_values` float [B,3,Hmax,Wmax] zero-padded at the bottom and right (after normalization,
    as officially), `pixel_mask` bool [B,Hmax,Wmax] (True = real pixel), `targets` (list of B dicts) and
    `skipped` (number of None samples). When every sample is None the batch is empty: B = 0,
    `pixel_values` [0,3,0,0], `pixel_mask` [0,0,0], `targets` [].

    `share_lone_image`: a batch of one image is a view of its tensor (nothing to pad, a mask of ones), not
    a copy: for a caller that owns the sample and does not write into it (the predictor; 13 MB less per
    800x1333 image).
    """
    kept = [sample for sample in samples if sample is not None]
    images = [sample["pixel_values"] for sample in kept]
    if share_lone_image and len(images) == 1:
        image = images[0]
        return {
            "pixel_values": image[None],
            "pixel_mask": torch.ones((1, *image.shape[1:]), dtype=torch.bool),
            "targets": [kept[0]["target"]],
            "skipped": len(samples) - 1,
        }
    height = max((image.shape[1] for image in images), default=0)
    width = max((image.shape[2] for image in images), default=0)
    dtype = images[0].dtype if images else torch.float32
    pixel_values = torch.zeros((len(images), 3, height, width), dtype=dtype)
    pixel_mask = torch.zeros((len(images), height, width), dtype=torch.bool)
    for index, image in enumerate(images):
        pixel_values[index, :, : image.shape[1], : image.shape[2]] = image
        pixel_mask[index, : image.shape[1], : image.shape[2]] = True
    return {
        "pixel_values": pixel_values,
        "pixel_mask": pixel_mask,
        "targets": [sample["target"] for sample in kept],
        "skipped": len(samples) - len(kept),
    }


def dense_relation_target(relations: Tensor, num_objects: int, num_predicates: int) -> Tensor:
    """Sparse relations long [T,3] (subject, object, predicate) -> float [N,N,R] with 1 at each triplet."""
    dense = torch.zeros((num_objects, num_objects, num_predicates), dtype=torch.float32)
    relations = relations.to(torch.long)
    dense[relations[:, 0], relations[:, 1], relations[:, 2]] = 1.0
    return dense
