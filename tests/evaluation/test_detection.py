"""DetectionEvaluator: COCO AP through pycocotools on hand-built cases."""

import numpy as np
import pytest

from egtr.evaluation import DetectionEvaluator, EvaluationInputError

BOXES = np.array([[10, 10, 60, 60], [100, 100, 180, 150]], np.float32)


def truth(labels=(0, 0)):
    return {"boxes": BOXES, "labels": np.array(labels), "relations": np.zeros((0, 3))}


def detections(boxes, labels, scores):
    return {
        "boxes": np.array(boxes, np.float32).reshape(-1, 4),
        "labels": np.array(labels),
        "scores": np.array(scores),
    }


def test_perfect_detections_give_ap_one(capsys):
    evaluator = DetectionEvaluator(num_classes=3)
    evaluator.update(truth(), detections(BOXES, [0, 0], [0.9, 0.8]))
    metrics = evaluator.compute()
    assert metrics["AP"] == pytest.approx(1.0) and metrics["AP50"] == pytest.approx(1.0)
    assert capsys.readouterr().out == ""  # pycocotools' prints are swallowed


def test_half_recall_by_hand():
    # One class, 2 GT boxes, one perfect detection: precision 1 up to recall 0.5, nothing after.
    # COCO's 101-point interpolation: recall points 0.00..0.50 (51 of 101) have precision 1 -> AP = 51/101.
    evaluator = DetectionEvaluator(num_classes=1)
    evaluator.update(truth(), detections(BOXES[:1], [0], [0.9]))
    metrics = evaluator.compute()
    assert metrics["AP50"] == pytest.approx(51 / 101)
    assert metrics["AR100"] == pytest.approx(0.5)


def test_no_detections_and_no_images():
    evaluator = DetectionEvaluator(num_classes=2)
    evaluator.update(truth(), detections(np.zeros((0, 4)), [], []))
    assert evaluator.compute()["AP"] == 0.0
    assert DetectionEvaluator(num_classes=2).compute()["AP"] is None


def test_open_images_convention_counts_a_match_with_annotation_zero_as_false_positive():
    # PySGG numbers its faux-COCO annotations from 0 and pycocotools treats a match with id 0 as no match:
    # with one GT and one perfect detection the official OI procedure reports AP 0, COCO's reports 1.
    # (On the Open Images test set this touches one annotation out of tens of thousands.)
    single = {"boxes": BOXES[:1], "labels": np.array([0])}
    perfect = detections(BOXES[:1], [0], [0.9])
    results = {}
    for convention in ("coco", "open_images"):
        evaluator = DetectionEvaluator(num_classes=1, convention=convention)
        evaluator.update(single, perfect)
        results[convention] = evaluator.compute()["AP50"]
    assert results == {"coco": pytest.approx(1.0), "open_images": 0.0}


def test_labels_out_of_range_are_reported():
    evaluator = DetectionEvaluator(num_classes=1)
    with pytest.raises(EvaluationInputError, match="image 3 detections: field 'labels' has classes outside"):
        evaluator.update(truth(), detections(BOXES, [0, 1], [0.5, 0.5]), image_id=3)
