"""HungarianMatcher: hand-computed costs, the smoothing shift, assignment optimality, empty and bad inputs."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from egtr.training.matcher import HungarianMatcher


def _official_matcher(smoothing: float = 1e-14) -> HungarianMatcher:
    return HungarianMatcher(
        class_cost=2, bbox_cost=5, giou_cost=2, focal_alpha=0.25, focal_gamma=2, smoothing=smoothing
    )


def _two_queries_one_target() -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor], list[torch.Tensor]]:
    logits = torch.tensor([[[0.0, 0.0], [2.0, -2.0]]])  # query 0: p = 0.5; query 1: p(class 0) = sigmoid(2)
    pred_boxes = torch.tensor([[[0.5, 0.5, 0.2, 0.2], [0.3, 0.3, 0.2, 0.2]]])
    return logits, pred_boxes, [torch.tensor([0])], [torch.tensor([[0.5, 0.5, 0.2, 0.2]])]


def test_hand_computed_costs_and_assignment() -> None:
    # class cost, alpha 0.25, gamma 2, eps 1e-8:
    #  query 0, p = 0.5:  pos = 0.25 * 0.5^2 * -log(0.5)   = 0.0433217
    #                     neg = 0.75 * 0.5^2 * -log(0.5)   = 0.1299651  -> class = -0.0866434
    #  query 1, p = 0.8807971: pos = 0.25 * 0.1192029^2 * -log(0.8807971) = 0.0004509
    #                     neg = 0.75 * 0.8807971^2 * -log(0.1192029)     = 1.2375586 -> class = -1.2371077
    # L1: query 0 exact -> 0; query 1: |0.3-0.5| + |0.3-0.5| = 0.4
    # GIoU: query 0 exact -> 1; query 1 [0.2,0.4]^2 vs [0.4,0.6]^2: IoU 0, union 0.08, hull 0.16 -> -0.5
    # cost = 5 L1 + 2 class - 2 GIoU: query 0 = -0.1732868 - 2 = -2.1732868
    #                                 query 1 = 2 - 2.4742154 + 1 = 0.5257846
    logits, pred_boxes, labels, boxes = _two_queries_one_target()
    matcher = _official_matcher(smoothing=0.0)
    cost = matcher.cost_matrix(logits[0], pred_boxes[0], labels[0], boxes[0])
    torch.testing.assert_close(cost, torch.tensor([[-2.1732868], [0.5257846]]), rtol=0, atol=1e-6)
    (match,) = matcher(logits, pred_boxes, labels, boxes)
    assert match.query_index.tolist() == [0] and match.target_index.tolist() == [0]
    torch.testing.assert_close(match.cost, torch.tensor([-2.1732868]), rtol=0, atol=1e-6)


def test_smoothing_shift_hand_computed() -> None:
    # perfect-match cost = 2 * 0.75 * log(1e-8) - 2 = -29.6310211; logit(1e-14) = -log(1e14 - 1) = -32.2361913
    # shifted cost of query 0 = -2.1732868 + 29.6310211 - 32.2361913 = -4.7784570
    # uncertainty u = sigmoid(-4.7784570) = 0.0083388, label scale 1 - u = 0.9916612
    logits, pred_boxes, labels, boxes = _two_queries_one_target()
    matcher = _official_matcher(smoothing=1e-14)
    assert matcher.perfect_match_cost().item() == pytest.approx(-29.6310211, abs=1e-5)
    (match,) = matcher(logits, pred_boxes, labels, boxes)
    assert match.cost.item() == pytest.approx(-4.7784570, abs=1e-4)
    assert match.cost.sigmoid().item() == pytest.approx(0.0083388, abs=1e-6)


def test_perfect_match_has_uncertainty_equal_to_smoothing() -> None:
    # p = 1 on the right class (logit 30: sigmoid = 1 in float32) and the exact box -> cost = perfect-match
    # cost, shifted to logit(s), so u = sigmoid(logit(s)) = s
    for smoothing in (1e-14, 0.1, 0.5):
        matcher = _official_matcher(smoothing)
        logits = torch.tensor([[[30.0, -30.0]]])
        box = torch.tensor([[[0.4, 0.5, 0.2, 0.3]]])
        (match,) = matcher(logits, box, [torch.tensor([0])], [box[0]])
        assert match.cost.sigmoid().item() == pytest.approx(smoothing, rel=1e-4)


def test_assignment_is_optimal_and_sorted_by_query() -> None:
    generator = torch.Generator().manual_seed(3)
    matcher = _official_matcher()
    for _ in range(20):
        logits = torch.randn(1, 4, 3, generator=generator)
        pred_boxes = torch.rand(1, 4, 4, generator=generator) * 0.4 + 0.1
        labels = torch.randint(0, 3, (3,), generator=generator)
        boxes = torch.rand(3, 4, generator=generator) * 0.4 + 0.1
        (match,) = matcher(logits, pred_boxes, [labels], [boxes])
        cost = matcher.shift(matcher.cost_matrix(logits[0], pred_boxes[0], labels, boxes))
        best = min(
            sum(cost[query, target].item() for target, query in enumerate(queries))
            for queries in itertools.permutations(range(4), 3)
        )
        assert match.cost.sum().item() == pytest.approx(best, abs=1e-4)
        assert match.query_index.tolist() == sorted(match.query_index.tolist())
        torch.testing.assert_close(match.cost, cost[match.query_index, match.target_index])


def test_cost_matrix_matches_elementwise_formula() -> None:
    generator = torch.Generator().manual_seed(5)
    logits = torch.randn(3, 4, generator=generator)
    pred_boxes = torch.rand(3, 4, generator=generator) * 0.4 + 0.1
    labels = torch.tensor([2, 0])
    boxes = torch.rand(2, 4, generator=generator) * 0.4 + 0.1
    cost = _official_matcher(smoothing=0.0).cost_matrix(logits, pred_boxes, labels, boxes)
    for query in range(3):
        for target in range(2):
            p = 1 / (1 + math.exp(-logits[query, labels[target]].item()))
            class_cost = 0.25 * (1 - p) ** 2 * -math.log(p + 1e-8) - 0.75 * p**2 * -math.log(1 - p + 1e-8)
            a, b = pred_boxes[query].tolist(), boxes[target].tolist()
            l1 = sum(abs(x - y) for x, y in zip(a, b))
            a0, a1 = (a[0] - a[2] / 2, a[1] - a[3] / 2), (a[0] + a[2] / 2, a[1] + a[3] / 2)
            b0, b1 = (b[0] - b[2] / 2, b[1] - b[3] / 2), (b[0] + b[2] / 2, b[1] + b[3] / 2)
            inter = max(0, min(a1[0], b1[0]) - max(a0[0], b0[0])) * max(
                0, min(a1[1], b1[1]) - max(a0[1], b0[1])
            )
            union = a[2] * a[3] + b[2] * b[3] - inter
            hull = (max(a1[0], b1[0]) - min(a0[0], b0[0])) * (max(a1[1], b1[1]) - min(a0[1], b0[1]))
            giou = inter / union - (hull - union) / hull
            expected = 5 * l1 + 2 * class_cost - 2 * giou
            assert cost[query, target].item() == pytest.approx(expected, abs=1e-5)


def test_images_without_targets() -> None:
    matcher = _official_matcher()
    logits, pred_boxes = torch.randn(3, 4, 2), torch.rand(3, 4, 4) * 0.3 + 0.2
    labels = [torch.zeros(0, dtype=torch.long), torch.tensor([1]), torch.zeros(0, dtype=torch.long)]
    boxes = [torch.zeros(0, 4), torch.tensor([[0.5, 0.5, 0.1, 0.1]]), torch.zeros(0, 4)]
    matches = matcher(logits, pred_boxes, labels, boxes)
    assert [len(match.query_index) for match in matches] == [0, 1, 0]
    assert matches[0].cost.shape == (0,)
    empty = matcher(logits, pred_boxes, [labels[0]] * 3, [boxes[0]] * 3)
    assert all(len(match.query_index) == 0 for match in empty)


def test_more_targets_than_queries_is_an_error() -> None:
    matcher = _official_matcher()
    with pytest.raises(ValueError, match=r"targets\[0\] has 3 boxes but the model has only 2"):
        matcher(
            torch.randn(1, 2, 2), torch.rand(1, 2, 4), [torch.zeros(3, dtype=torch.long)], [torch.rand(3, 4)]
        )


def test_invalid_settings() -> None:
    with pytest.raises(ValueError, match="cannot all be 0"):
        HungarianMatcher(0, 0, 0)
    with pytest.raises(ValueError, match="smoothing"):
        HungarianMatcher(smoothing=1.0)


def test_non_finite_predictions_are_a_clear_error() -> None:
    logits = torch.zeros(2, 3, 2)
    logits[1, 0, 0] = float("nan")
    with pytest.raises(FloatingPointError, match="image 1: matching cost not finite"):
        _official_matcher()(
            logits, torch.rand(2, 3, 4) * 0.3 + 0.2, [torch.tensor([0])] * 2, [torch.rand(1, 4)] * 2
        )
