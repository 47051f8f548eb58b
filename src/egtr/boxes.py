"""Box formats and overlaps: the one place that converts and compares boxes.

Formats: `xyxy` (x0, y0, x1, y1) and `cxcywh` (centre x, centre y, width, height), in pixels or
normalized to [0, 1]. Torch functions work on any leading shape [..., 4]. The numpy `iou_plus_one_*`
functions reproduce the pixel conventions of the official scene-graph evaluators bit for bit.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor


def cxcywh_to_xyxy(boxes: Tensor) -> Tensor:
    """[..., 4] (cx, cy, w, h) -> [..., 4] (x0, y0, x1, y1)."""
    cx, cy, w, h = boxes.unbind(-1)
    return torch.stack((cx - 0.5 * w, cy - 0.5 * h, cx + 0.5 * w, cy + 0.5 * h), dim=-1)


def xyxy_to_cxcywh(boxes: Tensor) -> Tensor:
    """[..., 4] (x0, y0, x1, y1) -> [..., 4] (cx, cy, w, h)."""
    x0, y0, x1, y1 = boxes.unbind(-1)
    return torch.stack(((x0 + x1) / 2, (y0 + y1) / 2, x1 - x0, y1 - y0), dim=-1)


def scale_boxes(boxes: Tensor, width: float, height: float) -> Tensor:
    """Multiply [..., 4] boxes (either format) by (width, height, width, height)."""
    return boxes * boxes.new_tensor([width, height, width, height])


def box_area(boxes: Tensor) -> Tensor:
    """[..., 4] xyxy -> [...] area (no +1 convention)."""
    return (boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1])


def box_iou(boxes1: Tensor, boxes2: Tensor) -> tuple[Tensor, Tensor]:
    """Pairwise IoU and union of [N,4] and [M,4] xyxy boxes -> ([N,M], [N,M])."""
    area1, area2 = box_area(boxes1), box_area(boxes2)
    top_left = torch.max(boxes1[:, None, :2], boxes2[None, :, :2])
    bottom_right = torch.min(boxes1[:, None, 2:], boxes2[None, :, 2:])
    wh = (bottom_right - top_left).clamp(min=0)
    intersection = wh[..., 0] * wh[..., 1]
    union = area1[:, None] + area2[None, :] - intersection
    return intersection / union, union


def generalized_box_iou(boxes1: Tensor, boxes2: Tensor) -> Tensor:
    """Pairwise generalized IoU of [N,4] and [M,4] xyxy boxes -> [N,M] (Rezatofighi et al. 2019)."""
    iou, union = box_iou(boxes1, boxes2)
    top_left = torch.min(boxes1[:, None, :2], boxes2[None, :, :2])
    bottom_right = torch.max(boxes1[:, None, 2:], boxes2[None, :, 2:])
    wh = (bottom_right - top_left).clamp(min=0)
    enclosing = wh[..., 0] * wh[..., 1]
    return iou - (enclosing - union) / enclosing


def iou_plus_one_pixel(boxes1: np.ndarray, boxes2: np.ndarray) -> np.ndarray:
    """Pairwise IoU [N,M] of xyxy pixel boxes [N,4] and [M,4] with the +1-pixel convention, in float64.

    Reproduces the neural-motifs Cython `bbox_overlaps` used by the VG recall evaluator (the official
    `lib/fpn/box_intersections_cpu/`, architecture.md §10): widths and heights are `x1 - x0 + 1` for the
    areas and the intersection, boxes whose +1 intersection width or height is <= 0 do not overlap (IoU 0),
    union = (area1 + area2) - intersection, same operation order.
    """
    boxes1 = np.asarray(boxes1, dtype=np.float64).reshape(-1, 4)
    boxes2 = np.asarray(boxes2, dtype=np.float64).reshape(-1, 4)
    area1 = (boxes1[:, 2] - boxes1[:, 0] + 1) * (boxes1[:, 3] - boxes1[:, 1] + 1)
    area2 = (boxes2[:, 2] - boxes2[:, 0] + 1) * (boxes2[:, 3] - boxes2[:, 1] + 1)
    width = (
        np.minimum(boxes1[:, None, 2], boxes2[None, :, 2])
        - np.maximum(boxes1[:, None, 0], boxes2[None, :, 0])
        + 1
    )
    height = (
        np.minimum(boxes1[:, None, 3], boxes2[None, :, 3])
        - np.maximum(boxes1[:, None, 1], boxes2[None, :, 1])
        + 1
    )
    overlapping = (width > 0) & (height > 0)
    intersection = width * height
    union = area1[:, None] + area2[None, :] - intersection
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(overlapping, intersection / union, 0.0)


def iou_plus_one_intersection(boxes1: np.ndarray, boxes2: np.ndarray) -> np.ndarray:
    """Pairwise IoU [N,M] of xyxy boxes in float32 with +1 on the intersection only (Open Images AP quirk).

    Reproduces PySGG's `bbox_iou` used by the official Open Images relation AP (in the official
    `lib/evaluation/ap_eval_rel.py`, architecture.md §10): intersection sides `clamp(min(x1) - max(x0) + 1,
    0)`, areas WITHOUT +1, union = (area1 + area2) - intersection, all in float32. The result can exceed 1
    for small boxes; that is the reference behaviour.
    """
    boxes1 = np.asarray(boxes1, dtype=np.float32).reshape(-1, 4)
    boxes2 = np.asarray(boxes2, dtype=np.float32).reshape(-1, 4)
    one = np.float32(1)
    top_left = np.maximum(boxes1[:, None, :2], boxes2[None, :, :2])
    bottom_right = np.minimum(boxes1[:, None, 2:], boxes2[None, :, 2:])
    sides = np.maximum(bottom_right - top_left + one, np.float32(0))
    intersection = sides[..., 0] * sides[..., 1]
    area1 = (boxes1[:, 2] - boxes1[:, 0]) * (boxes1[:, 3] - boxes1[:, 1])
    area2 = (boxes2[:, 2] - boxes2[:, 0]) * (boxes2[:, 3] - boxes2[:, 1])
    with np.errstate(divide="ignore", invalid="ignore"):
        return intersection / (area1[:, None] + area2[None, :] - intersection)


def xywh_to_xyxy_array(boxes: np.ndarray) -> np.ndarray:
    """numpy [..., 4] (x, y, w, h) (COCO annotation boxes) -> [..., 4] (x0, y0, x1, y1), dtype kept."""
    boxes = np.asarray(boxes)
    return np.concatenate((boxes[..., :2], boxes[..., :2] + boxes[..., 2:]), axis=-1)


def xyxy_to_xywh_array(boxes: np.ndarray) -> np.ndarray:
    """numpy [..., 4] (x0, y0, x1, y1) -> [..., 4] (x, y, w, h) (COCO annotation boxes), dtype kept."""
    boxes = np.asarray(boxes)
    return np.concatenate((boxes[..., :2], boxes[..., 2:] - boxes[..., :2]), axis=-1)
