"""SceneGraphEvaluator: hand-computed cases (values worked out in the comments) and a loop reference."""

import numpy as np
import pytest
import torch

from egtr.evaluation import EvaluationInputError, SceneGraphEvaluator
from tests.evaluation.random_scenes import random_images
from tests.evaluation.reference_evaluators import reference_sgdet

A = [0, 0, 9, 9]  # 10 x 10 pixels with the +1 convention
B = [20, 20, 29, 29]
C = [40, 0, 49, 9]


def truth(boxes, labels, relations):
    return {
        "boxes": np.array(boxes, float),
        "labels": np.array(labels),
        "relations": np.array(relations).reshape(-1, 3),
    }


def prediction(boxes, labels, pairs, rel_scores, scores=None):
    return {
        "boxes": np.array(boxes, np.float32).reshape(-1, 4),
        "labels": np.array(labels, np.int64),
        "scores": np.array(scores if scores is not None else [1.0] * len(labels), np.float32),
        "rel_pairs": np.array(pairs, np.int64).reshape(-1, 2),
        "rel_scores": np.array(rel_scores, np.float32).reshape(len(pairs), -1)
        if len(pairs)
        else np.zeros((0, 3)),
    }


def evaluate(images, num_predicates=3, ks=(1, 2, 20), **options):
    evaluator = SceneGraphEvaluator(num_predicates, ks, **options)
    for groundtruth, predicted in images:
        evaluator.update(groundtruth, predicted)
    return evaluator.compute()


def test_triplet_hit_by_the_second_of_two_predictions():
    # Pair 1 is (B, A): subject class 1 != 0, a miss. Pair 2 is (A, B) with predicate 2: a hit.
    # R@1 = 0/1, R@2 = R@20 = 1/1 (fewer than 20 predictions is fine).
    gt = truth([A, B], [0, 1], [[0, 1, 2]])
    pred = prediction([A, B], [0, 1], [[1, 0], [0, 1]], [[0, 0, 1], [0, 0, 1]])
    metrics = evaluate([(gt, pred)])
    assert (metrics["R@1"], metrics["R@2"], metrics["R@20"]) == (0.0, 1.0, 1.0)


@pytest.mark.parametrize(("bottom", "expected"), [(4.0, 1.0), (3.99, 0.0)])
def test_iou_threshold_uses_plus_one_pixels_and_greater_or_equal(bottom, expected):
    # GT subject A = [0,0,9,9]: area (9+1)(9+1) = 100. Prediction [0,0,9,bottom]:
    # bottom 4    -> area 10*5 = 50, intersection 50, union 100 + 50 - 50 = 100, IoU 0.5 >= 0.5: hit
    #                (plain IoU would be 36/81 = 0.44, a miss);
    # bottom 3.99 -> area 10*4.99 = 49.9, IoU 49.9/100 = 0.499 < 0.5: miss.
    gt = truth([A, B], [0, 1], [[0, 1, 0]])
    pred = prediction([[0, 0, 9, bottom], B], [0, 1], [[0, 1]], [[1, 0, 0]])
    assert evaluate([(gt, pred)])["R@1"] == expected


def test_duplicate_ground_truth_triplets_collapse():
    # GT rows (0,1,0), (0,1,0), (0,1,1) are 2 distinct triplets; the pair (0,1) predicts predicate 0:
    # R = 1/2 (it would be 2/3 if the duplicate counted).
    gt = truth([A, B], [0, 1], [[0, 1, 0], [0, 1, 0], [0, 1, 1]])
    pred = prediction([A, B], [0, 1], [[0, 1]], [[0.9, 0.8, 0.1]])
    metrics = evaluate([(gt, pred)])
    assert metrics["R@20"] == 0.5
    assert metrics["counts"]["gt_triplets"] == 2


def test_two_predicates_on_one_pair_graph_constraint_and_not():
    # GT (0,1,0) and (0,1,1). Pair (0,1) scores [0.9, 0.8, 0.1].
    # Graph constraint: one triplet (0,1,0) -> R@1 = R@2 = 1/2; per predicate R_0 = 1, R_1 = 0, R_2 undefined
    #   -> mR@2 = (1 + 0) / 3 = 1/3; F1@2 = 2 * 1/2 * 1/3 / (1/2 + 1/3) = 0.4.
    # No graph constraint: (0,1,0) 0.9, (0,1,1) 0.8, (0,1,2) 0.1 -> ngR@1 = 1/2, ngR@2 = 1;
    #   ngmR@1 = (1 + 0) / 3 = 1/3, ngmR@2 = (1 + 1) / 3 = 2/3.
    gt = truth([A, B], [0, 1], [[0, 1, 0], [0, 1, 1]])
    pred = prediction([A, B], [0, 1], [[0, 1]], [[0.9, 0.8, 0.1]])
    metrics = evaluate([(gt, pred)])
    assert (metrics["R@1"], metrics["R@2"]) == (0.5, 0.5)
    assert metrics["mR@2"] == pytest.approx(1 / 3)
    assert metrics["F1@2"] == pytest.approx(0.4)
    assert (metrics["ngR@1"], metrics["ngR@2"]) == (0.5, 1.0)
    assert metrics["ngmR@1"] == pytest.approx(1 / 3)
    assert metrics["ngmR@2"] == pytest.approx(2 / 3)


def test_one_prediction_may_hit_several_ground_truth_triplets():
    # GT objects 0 and 1 share box A and class 0; relations (0,2,0) and (1,2,0). The single prediction
    # (A, B, 0) hits both: R@1 = 2/2.
    gt = truth([A, A, B], [0, 0, 1], [[0, 2, 0], [1, 2, 0]])
    pred = prediction([A, B], [0, 1], [[0, 1]], [[1, 0, 0]])
    assert evaluate([(gt, pred)])["R@1"] == 1.0


def test_image_without_predictions_counts_as_zero():
    # Image 1 fully hit (1), image 2 has no prediction at all (0), image 3 boxes but no pairs (0): R = 1/3.
    gt = truth([A, B], [0, 1], [[0, 1, 0]])
    hit = prediction([A, B], [0, 1], [[0, 1]], [[1, 0, 0]])
    empty = prediction(np.zeros((0, 4)), [], np.zeros((0, 2)), np.zeros((0, 3)))
    no_pairs = prediction([A, B], [0, 1], np.zeros((0, 2)), np.zeros((0, 3)))
    metrics = evaluate([(gt, hit), (gt, empty), (gt, no_pairs)])
    assert metrics["R@20"] == pytest.approx(1 / 3)
    assert metrics["ngR@20"] == pytest.approx(1 / 3)


def test_image_without_ground_truth_relations_is_skipped_and_counted():
    # The reference asserts on such images; here they are skipped: R = 1 from the other image alone.
    hit = prediction([A, B], [0, 1], [[0, 1]], [[1, 0, 0]])
    no_relations = truth([A, B], [0, 1], np.zeros((0, 3)))
    metrics = evaluate([(truth([A, B], [0, 1], [[0, 1, 0]]), hit), (no_relations, hit)])
    assert metrics["R@20"] == 1.0
    assert metrics["counts"]["images"] == 1
    assert metrics["counts"]["images_without_relations"] == 1
    only_empty = evaluate([(no_relations, hit)])
    assert only_empty["R@20"] is None and only_empty["mR@20"] is None and only_empty["F1@20"] is None


def test_mean_recall_divides_by_all_predicates_and_averages_over_images():
    # 5 predicates; only 0 and 1 occur in the ground truth.
    # Image 1: GT (0,1,0) hit, (0,1,1) missed (the pair predicts predicate 0)  -> R = 1/2.
    # Image 2: GT (0,1,0) hit, (1,0,0) missed (no prediction for the pair (1,0)) -> R = 1/2.
    # R = (1/2 + 1/2) / 2 = 1/2. Predicate 0: images 1 (1/1) and 2 (1/2) -> 3/4; predicate 1: image 1 -> 0.
    # mR = (3/4 + 0) / 5 = 0.15 (predicates 2, 3, 4 never occur but stay in the denominator).
    pred = prediction([A, B], [0, 1], [[0, 1]], [[1, 0, 0, 0, 0]])
    image1 = truth([A, B], [0, 1], [[0, 1, 0], [0, 1, 1]])
    image2 = truth([A, B], [0, 1], [[0, 1, 0], [1, 0, 0]])
    metrics = evaluate([(image1, pred), (image2, pred)], num_predicates=5, predicate_names=list("abcde"))
    assert metrics["R@20"] == 0.5
    assert metrics["mR@20"] == pytest.approx(0.15)
    rows = metrics["per_predicate"]
    assert (rows[0]["name"], rows[0]["R@20"], rows[0]["images"], rows[0]["gt_triplets"]) == ("a", 0.75, 2, 3)
    assert rows[1]["R@20"] == 0.0
    assert all(row["R@20"] is None and row["images"] == 0 for row in rows[2:])


def test_zero_shot_recall_uses_only_unseen_triplets():
    # Seen in training: (class 0, class 1, predicate 0). Image 1: GT (0,1,0) seen, (0,1,1) unseen.
    # Graph constraint predicts (0,1,0) only -> zR = 0/1; no constraint also predicts (0,1,1) at rank 2
    # -> ngzR@1 = 0, ngzR@2 = 1. Image 2 has only seen triplets: skipped for zR.
    pred = prediction([A, B], [0, 1], [[0, 1]], [[0.9, 0.8, 0.1]])
    image1 = truth([A, B], [0, 1], [[0, 1, 0], [0, 1, 1]])
    image2 = truth([A, B], [0, 1], [[0, 1, 0]])
    metrics = evaluate([(image1, pred), (image2, pred)], zero_shot_triplets={(0, 1, 0)})
    assert (metrics["zR@1"], metrics["zR@20"]) == (0.0, 0.0)
    assert (metrics["ngzR@1"], metrics["ngzR@2"]) == (0.0, 1.0)
    assert metrics["counts"]["zero_shot_gt_triplets"] == 1
    assert metrics["counts"]["images_with_zero_shot"] == 1
    assert "zR@20" not in evaluate([(image1, pred)])


def test_torch_tensors_are_accepted():
    gt = truth([A, B], [0, 1], [[0, 1, 0]])
    pred = prediction([A, B], [0, 1], [[0, 1]], [[1, 0, 0]])
    as_torch = {key: torch.as_tensor(value) for key, value in pred.items()}
    assert evaluate([(gt, as_torch)]) == evaluate([(gt, pred)])


def test_bad_input_names_image_and_field():
    evaluator = SceneGraphEvaluator(3)
    gt = truth([A, B], [0, 1], [[0, 1, 0]])
    with pytest.raises(EvaluationInputError, match=r"image 7 prediction: field 'rel_scores' must have shape"):
        evaluator.update(gt, prediction([A, B], [0, 1], [[0, 1]], [[1, 0]]), image_id=7)
    with pytest.raises(
        EvaluationInputError, match=r"image 8 ground truth: field 'relations' has box indices"
    ):
        evaluator.update(truth([A, B], [0, 1], [[0, 5, 0]]), prediction([A], [0], [], []), image_id=8)
    with pytest.raises(EvaluationInputError, match=r"field 'relations' has predicates outside \[0, 3\)"):
        evaluator.update(truth([A, B], [0, 1], [[0, 1, 3]]), prediction([A], [0], [], []))


@pytest.mark.parametrize("seed", [0, 1])
def test_matches_loop_reference_on_random_images(seed):
    images = random_images(seed, 300, num_predicates=5)
    seen = {(0, 1, 2), (1, 1, 0), (2, 3, 4), (0, 0, 1), (3, 2, 2)}
    ks = (1, 3, 5, 20)
    metrics = evaluate(images, num_predicates=5, ks=ks, zero_shot_triplets=seen)
    for prefix, multiple in (("", False), ("ng", True)):
        expected = reference_sgdet(images, 5, ks, multiple_preds=multiple, seen_triplets=seen)
        for k in ks:
            for name in ("R", "mR", "zR"):
                assert metrics[f"{prefix}{name}@{k}"] == pytest.approx(expected[f"{name}@{k}"], abs=1e-12)
