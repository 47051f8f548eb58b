"""evaluate_split: predictions against dataset records, missing and unknown images."""

from types import SimpleNamespace

import numpy as np
import pytest

from egtr.evaluation import EvaluationInputError, evaluate_split

BOXES = np.array([[0, 0, 9, 9], [20, 20, 29, 29]], np.float32)


def record(image_id, relations):
    return SimpleNamespace(
        image_id=image_id, boxes=BOXES, labels=np.array([0, 1]), relations=np.array(relations).reshape(-1, 3)
    )


def hit_prediction(with_detections=True):
    prediction = {
        "boxes": BOXES,
        "labels": np.array([0, 1]),
        "scores": np.ones(2, np.float32),
        "rel_pairs": np.array([[0, 1]]),
        "rel_scores": np.array([[1.0, 0.0]], np.float32),
    }
    if with_detections:
        prediction["detections"] = {
            "boxes": BOXES,
            "labels": np.array([0, 1]),
            "scores": np.array([0.9, 0.8]),
        }
    return prediction


RECORDS = [record("a", [[0, 1, 0]]), record("b", [[0, 1, 0]]), record("c", [])]


def test_missing_predictions_are_empty_and_reported():
    # "a" is hit (1), "b" has no prediction (0), "c" has no relation (skipped): R@20 = 1/2.
    result = evaluate_split(RECORDS, [("a", hit_prediction())], "vg", num_classes=2, num_predicates=2)
    assert result.metrics["R@20"] == 0.5
    assert result.missing_image_ids == ["b", "c"]
    counts = result.metrics["counts"]
    assert (
        counts["split_images"],
        counts["images_without_prediction"],
        counts["images_without_relations"],
    ) == (3, 2, 1)
    # Detection AP over all three images: class 0 and class 1 found in "a" only, missed in "b" and "c".
    assert 0 < result.metrics["AP50"] < 1


def test_open_images_protocol_and_no_detections():
    result = evaluate_split(RECORDS, [("a", hit_prediction(False))], "oi", num_classes=2, num_predicates=2)
    assert result.metrics["R@50"] == pytest.approx(0.5)
    assert "AP50" not in result.metrics and "score_wtd" in result.metrics


@pytest.mark.parametrize(
    ("predictions", "message"),
    [
        ([("zz", hit_prediction())], "prediction for image zz, which is not in the split"),
        ([("a", hit_prediction()), ("a", hit_prediction())], "two predictions for image a"),
        ([("a", hit_prediction()), ("b", hit_prediction(False))], "image b: either every prediction"),
    ],
)
def test_bad_prediction_sets(predictions, message):
    with pytest.raises(EvaluationInputError, match=message):
        evaluate_split(RECORDS, predictions, num_classes=2, num_predicates=2)
