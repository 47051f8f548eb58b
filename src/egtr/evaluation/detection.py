"""Object detection AP (COCO AP, AP50, ...) through pycocotools, from per-image detections.

Detections per image: `{"boxes": [D,4] xyxy pixels, "labels": [D] 0-based, "scores": [D]}`. VG: the top-100
(query, class) pairs of sigmoid(logits) (architecture.md §5.6, §5.8); Open Images: every query with its
softmax-max class (architecture.md §5.8). Conventions (the official evaluators: architecture.md §10):
- "coco" (VG): xywh = (x0, y0, x1 - x0, y1 - y0) as DETR's CocoEvaluator (the official
  `lib/evaluation/coco_eval.py`), annotation ids from 1.
- "open_images": widths and heights + 1 for ground truth and detections, ground-truth area
  (w + 1)(h + 1), annotation ids from 0 as PySGG's faux COCO (`eval_entites_detection` in the official
  `lib/evaluation/oi_eval.py`; pycocotools then counts a detection matched to annotation 0 as a false
  positive — a reference quirk kept on purpose).
Category ids are class index + 1 (a bijection, so the metrics do not depend on it).
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Mapping

import numpy as np

from egtr.evaluation.inputs import describe_image, read_detections, read_labelled_boxes

COCO_STAT_NAMES = ("AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl")
CONVENTIONS = ("coco", "open_images")


class DetectionEvaluator:
    """COCO box AP over the images given to `update(groundtruth, detections)`."""

    def __init__(self, num_classes: int, convention: str = "coco"):
        if convention not in CONVENTIONS:
            raise ValueError(f"convention must be one of {CONVENTIONS}, got {convention!r}")
        self.num_classes = num_classes
        self.convention = convention
        self.reset()

    def reset(self) -> None:
        self._groundtruth: list[tuple[np.ndarray, np.ndarray]] = []
        self._detections: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []

    def update(self, groundtruth: Mapping, detections: Mapping, image_id: object | None = None) -> None:
        """Add one image: ground-truth `boxes` [M,4], `labels` [M]; detections `boxes`, `labels`, `scores`."""
        where = describe_image(image_id)
        self._groundtruth.append(read_labelled_boxes(groundtruth, f"{where} ground truth", self.num_classes))
        self._detections.append(read_detections(detections, f"{where} detections", self.num_classes))

    def compute(self) -> dict:
        """The twelve COCO statistics (AP, AP50, AP75, APs, APm, APl, AR1, AR10, AR100, ARs, ARm, ARl);
        None where pycocotools has no ground truth to measure (-1)."""
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval

        if not self._groundtruth:
            return dict.fromkeys(COCO_STAT_NAMES)
        first_id = 0 if self.convention == "open_images" else 1
        images = [{"id": index} for index in range(len(self._groundtruth))]
        categories = [{"id": label + 1} for label in range(self.num_classes)]
        truth = self._annotations(self._groundtruth, first_id, with_scores=False)
        results = self._annotations(self._detections, 1, with_scores=True)
        with contextlib.redirect_stdout(io.StringIO()):
            coco_truth = _coco(COCO, images, categories, truth)
            coco_results = _coco(COCO, images, categories, results)
            evaluation = COCOeval(coco_truth, coco_results, "bbox")
            evaluation.evaluate()
            evaluation.accumulate()
            evaluation.summarize()
        return {
            name: (None if value < 0 else float(value))
            for name, value in zip(COCO_STAT_NAMES, evaluation.stats)
        }

    def _annotations(self, per_image: list, first_id: int, with_scores: bool) -> list[dict]:
        """COCO annotation dicts of (boxes, labels[, scores]) per image; image ids are list positions."""
        plus_one = 1 if self.convention == "open_images" else 0
        annotations = []
        for image_index, (boxes, labels, *scores) in enumerate(per_image):
            widths = (boxes[:, 2] - boxes[:, 0] + plus_one).tolist()
            heights = (boxes[:, 3] - boxes[:, 1] + plus_one).tolist()
            scores = scores[0].tolist() if with_scores else [None] * len(boxes)
            for box, width, height, label, score in zip(
                boxes.tolist(), widths, heights, labels.tolist(), scores
            ):
                annotation = {
                    "id": first_id + len(annotations),
                    "image_id": image_index,
                    "category_id": label + 1,
                    "bbox": [box[0], box[1], width, height],
                    "area": width * height,
                    "iscrowd": 0,
                }
                if with_scores:
                    annotation["score"] = score
                annotations.append(annotation)
        return annotations


def _coco(coco_class: type, images: list, categories: list, annotations: list):
    coco = coco_class()
    coco.dataset = {"images": images, "categories": categories, "annotations": annotations}
    coco.createIndex()
    return coco
