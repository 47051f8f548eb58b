"""Detection terms: focal loss, L1 and GIoU box losses, box count, cardinality, per-layer auxiliary terms."""

from __future__ import annotations

import pytest
import torch

from egtr.training.detection import (
    cardinality_error,
    count_boxes,
    detection_losses,
    detection_terms,
    sigmoid_focal_loss,
)
from egtr.training.matcher import HungarianMatcher, Match
from egtr.training.targets import ImageTargets


def _target(labels: list[int], boxes: list[list[float]]) -> ImageTargets:
    return ImageTargets(
        torch.tensor(labels, dtype=torch.long),
        torch.tensor(boxes).reshape(-1, 4),
        torch.zeros(0, 3, dtype=torch.long),
    )


def test_focal_loss_hand_computed() -> None:
    # logit 0, target 1: p_t = 0.5, ce = log 2, alpha_t = 0.25 -> 0.25 * 0.6931472 * 0.5^2 = 0.0433217
    # logit 0, target 0: alpha_t = 0.75                         -> 0.75 * 0.6931472 * 0.5^2 = 0.1299651
    # logit 2, target 0: p = 0.8807971, ce = softplus(2) = 2.1269280 -> 0.75 * 2.1269280 * p^2 = 1.2375586
    # logit -2, target 0: p = 0.1192029, ce = softplus(-2) = 0.1269280 -> 0.75 * 0.1269280 * p^2 = 0.0013527
    logits = torch.tensor([0.0, 0.0, 2.0, -2.0])
    targets = torch.tensor([1.0, 0.0, 0.0, 0.0])
    expected = torch.tensor([0.0433217, 0.1299651, 1.2375586, 0.0013527])
    torch.testing.assert_close(sigmoid_focal_loss(logits, targets, 0.25, 2.0), expected, rtol=0, atol=1e-6)


def test_detection_losses_hand_computed() -> None:
    # one image, queries 0 and 1, one target (class 0) matched to query 0
    # loss_ce = sum of the four focal terms above (query 0 one-hot [1, 0], query 1 all zero) = 1.4121981
    # query 0 box (0.55, 0.5, 0.2, 0.2) vs target (0.5, 0.5, 0.2, 0.2): L1 = 0.05
    # xyxy [0.45, 0.4, 0.65, 0.6] vs [0.4, 0.4, 0.6, 0.6]: inter 0.03, union 0.05, hull 0.05 -> GIoU 0.6
    logits = torch.tensor([[[0.0, 0.0], [2.0, -2.0]]])
    pred_boxes = torch.tensor([[[0.55, 0.5, 0.2, 0.2], [0.3, 0.3, 0.2, 0.2]]])
    targets = [_target([0], [[0.5, 0.5, 0.2, 0.2]])]
    matches = [Match(torch.tensor([0]), torch.tensor([0]), torch.tensor([0.0]))]
    losses = detection_losses(
        logits, pred_boxes, targets, matches, num_boxes=1.0, focal_alpha=0.25, focal_gamma=2
    )
    assert losses["loss_ce"].item() == pytest.approx(1.4121981, abs=1e-6)
    assert losses["loss_bbox"].item() == pytest.approx(0.05, abs=1e-6)
    assert losses["loss_giou"].item() == pytest.approx(0.4, abs=1e-6)
    halved = detection_losses(
        logits, pred_boxes, targets, matches, num_boxes=2.0, focal_alpha=0.25, focal_gamma=2
    )
    assert halved["loss_ce"].item() == pytest.approx(1.4121981 / 2, abs=1e-6)


def test_detection_losses_without_targets_are_finite() -> None:
    logits = torch.randn(2, 3, 4, requires_grad=True)
    pred_boxes = torch.rand(2, 3, 4).requires_grad_()
    targets = [_target([], []), _target([], [])]
    empty = Match(torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long), torch.zeros(0))
    losses = detection_losses(logits, pred_boxes, targets, [empty, empty], 1.0, 0.25, 2.0)
    assert losses["loss_bbox"].item() == 0 and losses["loss_giou"].item() == 0
    sum(losses.values()).backward()
    assert torch.isfinite(logits.grad).all() and torch.isfinite(pred_boxes.grad).all()


def test_count_boxes() -> None:
    targets = [_target([0, 1], [[0.5, 0.5, 0.1, 0.1]] * 2), _target([3], [[0.5, 0.5, 0.1, 0.1]])]
    assert count_boxes(targets, torch.device("cpu"), across_processes=True) == 3.0
    assert count_boxes([_target([], [])], torch.device("cpu"), across_processes=False) == 1.0  # clamped


def test_cardinality_error_counts_queries_not_on_the_last_class() -> None:
    # argmax per query: 2, 0, 1 -> two queries are not on the last class (2); one target -> |2 - 1| = 1
    logits = torch.tensor([[[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]])
    assert cardinality_error(logits, [_target([0], [[0.5, 0.5, 0.1, 0.1]])]).item() == 1.0


def test_each_decoder_layer_is_matched_on_its_own() -> None:
    # target box sits exactly on query 1 in layer 0 and on query 0 in the last layer:
    # each layer's own matching makes both box losses 0
    target_box = [0.5, 0.5, 0.2, 0.2]
    other_box = [0.2, 0.2, 0.1, 0.1]
    decoder_boxes = torch.tensor([[[other_box, target_box], [target_box, other_box]]])  # [B=1, L=2, N=2, 4]
    decoder_logits = torch.zeros(1, 2, 2, 3)
    matcher = HungarianMatcher(class_cost=2, bbox_cost=5, giou_cost=2)
    terms, matches = detection_terms(
        matcher,
        decoder_logits[:, -1],
        decoder_boxes[:, -1],
        decoder_logits,
        decoder_boxes,
        [_target([1], [target_box])],
        num_boxes=1.0,
        focal_alpha=0.25,
        focal_gamma=2.0,
    )
    assert matches[0].query_index.tolist() == [0]
    assert set(terms) == {
        "loss_ce",
        "loss_bbox",
        "loss_giou",
        "cardinality_error",
        "loss_ce_0",
        "loss_bbox_0",
        "loss_giou_0",
        "cardinality_error_0",
    }
    for name in ("loss_bbox", "loss_giou", "loss_bbox_0", "loss_giou_0"):
        assert terms[name].item() == pytest.approx(0.0, abs=1e-6)
    assert terms["loss_ce_0"].item() == pytest.approx(terms["loss_ce"].item())
