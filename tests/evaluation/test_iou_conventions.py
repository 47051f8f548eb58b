"""The two pixel conventions of the official evaluators (egtr.boxes numpy IoUs) against scalar loops."""

import numpy as np
import pytest

from egtr.boxes import iou_plus_one_intersection, iou_plus_one_pixel
from tests.evaluation.reference_evaluators import iou_intersection_plus_one, iou_plus_one


def random_boxes(rng, count):
    corners = rng.integers(0, 30, size=(count, 2)) + rng.choice([0.0, 0.5, 0.25], size=(count, 2))
    sizes = rng.integers(0, 20, size=(count, 2)) + rng.choice([0.0, 0.5], size=(count, 2))
    return np.concatenate((corners, corners + sizes), axis=1)


def test_plus_one_pixel_by_hand():
    # [0,0,9,9] and [5,0,14,9]: areas 10*10 = 100, intersection (9-5+1)*10 = 50, IoU 50/150 = 1/3.
    # Touching boxes [0,0,9,9] and [10,0,19,9]: +1 intersection width 0 -> IoU 0.
    iou = iou_plus_one_pixel(np.array([[0, 0, 9, 9]]), np.array([[5, 0, 14, 9], [10, 0, 19, 9]]))
    np.testing.assert_array_equal(iou, [[1 / 3, 0.0]])
    assert iou.dtype == np.float64


def test_intersection_plus_one_by_hand():
    # [0,0,9,9] with itself: intersection 10*10 = 100, areas 81 (no +1), IoU 100 / (162 - 100) > 1.
    iou = iou_plus_one_intersection(np.array([[0, 0, 9, 9]]), np.array([[0, 0, 9, 9]]))
    assert iou.dtype == np.float32
    assert iou[0, 0] == np.float32(100) / np.float32(62)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_match_scalar_loops_bit_for_bit(seed):
    rng = np.random.default_rng(seed)
    boxes1, boxes2 = random_boxes(rng, 15), random_boxes(rng, 12)
    plus_one = iou_plus_one_pixel(boxes1, boxes2)
    intersection = iou_plus_one_intersection(boxes1, boxes2)
    for i, box1 in enumerate(boxes1):
        for j, box2 in enumerate(boxes2):
            assert plus_one[i, j] == iou_plus_one(box1, box2)
            expected = iou_intersection_plus_one(box1, box2)
            assert intersection[i, j] == expected or (np.isnan(expected) and np.isnan(intersection[i, j]))


def test_empty_inputs():
    assert iou_plus_one_pixel(np.zeros((0, 4)), np.zeros((3, 4))).shape == (0, 3)
    assert iou_plus_one_intersection(np.zeros((2, 4)), np.zeros((0, 4))).shape == (2, 0)
