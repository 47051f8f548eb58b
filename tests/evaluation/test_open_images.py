"""OpenImagesEvaluator: hand-computed AP cases and a loop reference of PySGG's evaluator."""

import numpy as np
import pytest

from egtr.evaluation import OpenImagesEvaluator
from tests.evaluation.random_scenes import random_images
from tests.evaluation.reference_evaluators import reference_open_images

A = [0, 0, 9, 9]
B = [20, 20, 29, 29]
C = [40, 0, 49, 9]
D = [21, 20, 30, 29]  # B shifted by one pixel


def truth(boxes, labels, relations):
    return {"boxes": np.array(boxes, float), "labels": np.array(labels), "relations": np.array(relations)}


def prediction(boxes, labels, pairs, rel_scores):
    return {
        "boxes": np.array(boxes, np.float32),
        "labels": np.array(labels),
        "scores": np.ones(len(labels), np.float32),
        "rel_pairs": np.array(pairs),
        "rel_scores": np.array(rel_scores, np.float32),
    }


def test_duplicate_claim_is_a_false_positive_and_ap_by_hand():
    # GT (A:0, B:1, pred 0) and (A:0, C:1, pred 0): npos = 2. Candidates (second predicates score 0 and are
    # dropped by the > 1e-5 filter): (A,B) 0.9 TP; (A,D) 0.8 — D overlaps B best, already claimed: FP
    # (no fall-back to C); (A,C) 0.7 TP. tp = [1,1,2], fp = [0,1,1]: recall [.5,.5,1], precision [1,.5,2/3]
    # -> AP = 0.5 * 1 + 0.5 * 2/3 = 5/6, for relations and for phrases (union boxes behave the same).
    # Micro R@50 = 2/2 (VG matching: D vs B has +1 IoU 90/110 >= 0.5). score = 0.4 * 5/6 * 2 + 0.2 * 1.
    gt = truth([A, B, C], [0, 1, 1], [[0, 1, 0], [0, 2, 0]])
    pred = prediction([A, B, C, D], [0, 1, 1, 1], [[0, 1], [0, 3], [0, 2]], [[0.9, 0], [0.8, 0], [0.7, 0]])
    evaluator = OpenImagesEvaluator(2, ["on", "near"])
    evaluator.update(gt, pred)
    metrics = evaluator.compute()
    assert metrics["per_predicate"][0]["AP_rel"] == pytest.approx(5 / 6, abs=1e-9)
    assert metrics["per_predicate"][0]["AP_phr"] == pytest.approx(5 / 6, abs=1e-9)
    assert metrics["wmAP_rel"] == pytest.approx(5 / 6, abs=1e-9)
    assert metrics["R@50"] == pytest.approx(1.0, abs=1e-9)
    assert metrics["score_wtd"] == pytest.approx(0.4 * 5 / 6 + 0.4 * 5 / 6 + 0.2, abs=1e-9)
    assert metrics["per_predicate"][1] == {
        "predicate": 1,
        "name": "near",
        "gt_triplets": 0,
        "AP_rel": 0.0,
        "AP_phr": 0.0,
    }


@pytest.mark.parametrize(("bottom", "expected_ap"), [(2.0, 0.0), (3.0, 1.0)])
def test_overlap_must_be_strictly_above_half_with_the_intersection_plus_one_quirk(bottom, expected_ap):
    # GT subject [0,0,9,8] (area 72 without +1). Predicted subject [0,0,9,bottom]:
    # bottom 2: intersection (9+1)(2+1) = 30, area 18, union 72 + 18 - 30 = 60, IoU 0.5 — not > 0.5: FP.
    # bottom 3: intersection 40, area 27, union 59, IoU 0.678: TP, AP 1.
    # Objects are identical boxes B: quirk IoU 100 / (81 + 81 - 100) = 1.61, so the subject decides.
    gt = truth([[0, 0, 9, 8], B], [0, 1], [[0, 1, 0]])
    pred = prediction([[0, 0, 9, bottom], B], [0, 1], [[0, 1]], [[1.0]])
    evaluator = OpenImagesEvaluator(1)
    evaluator.update(gt, pred)
    assert evaluator.compute()["per_predicate"][0]["AP_rel"] == pytest.approx(expected_ap, abs=1e-9)


def test_low_scores_are_dropped_and_empty_images_do_not_crash():
    # Candidate score 1e-6 <= 1e-5 is dropped: no detection, AP 0 and R@50 0. An image without ground-truth
    # relations is skipped and counted (the reference would crash).
    gt = truth([A, B], [0, 1], [[0, 1, 0]])
    evaluator = OpenImagesEvaluator(1)
    evaluator.update(gt, prediction([A, B], [0, 1], [[0, 1]], [[1e-6]]))
    evaluator.update(truth([A], [0], np.zeros((0, 3))), prediction([A, B], [0, 1], [[0, 1]], [[1.0]]))
    metrics = evaluator.compute()
    assert (metrics["R@50"], metrics["wmAP_rel"]) == (0.0, 0.0)
    assert metrics["counts"] == {"images": 1, "images_without_relations": 1, "gt_triplets": 1}
    assert OpenImagesEvaluator(1).compute()["score_wtd"] is None


@pytest.mark.parametrize(("seed", "top_k"), [(0, 100), (1, 10)])
def test_matches_loop_reference_on_random_images(seed, top_k):
    images = random_images(seed, 250, num_predicates=5)
    evaluator = OpenImagesEvaluator(5, recall_ks=(5, 50), top_k=top_k)
    for groundtruth, predicted in images:
        evaluator.update(groundtruth, predicted)
    metrics = evaluator.compute()
    expected = reference_open_images(images, 5, recall_ks=(5, 50), top_k=top_k)
    for key in ("R@5", "R@50", "wmAP_rel", "wmAP_phr", "score_wtd"):
        assert metrics[key] == pytest.approx(expected[key], abs=1e-12)
    for row in metrics["per_predicate"]:
        assert row["AP_rel"] == pytest.approx(expected["AP_rel"][row["predicate"]], abs=1e-12)
        assert row["AP_phr"] == pytest.approx(expected["AP_phr"][row["predicate"]], abs=1e-12)
    assert 0 < metrics["wmAP_rel"] < 1
