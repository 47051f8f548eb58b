"""Query-space relation targets: index mapping, duplicates, multi-label pairs, smoothing, connectivity."""

from __future__ import annotations

import pytest
import torch

from egtr.training.matcher import Match
from egtr.training.relation import build_relation_targets, positive_pair_uncertainty
from egtr.training.targets import ImageTargets


def _image_with_two_boxes() -> tuple[Match, ImageTargets]:
    # target 0 -> query 2 (cost -2), target 1 -> query 0 (cost 0); query 1 unmatched
    match = Match(torch.tensor([0, 2]), torch.tensor([1, 0]), torch.tensor([0.0, -2.0]))
    relations = torch.tensor(
        [
            [0, 1, 1],  # target 0 -> target 1, predicate 1
            [0, 1, 1],  # the same triplet again: collapses
            [0, 1, 0],  # a second predicate on the same pair: a second entry
            [1, 1, 0],  # a self relation of target 1
        ]
    )
    target = ImageTargets(torch.tensor([3, 1]), torch.tensor([[0.5, 0.5, 0.2, 0.2]] * 2), relations)
    return match, target


def test_positive_entries_in_query_space() -> None:
    match, target = _image_with_two_boxes()
    targets = build_relation_targets([match], [target], num_queries=3, num_predicates=2, smoothing=1e-14)
    # (target 0, target 1) = (query 2, query 0); (target 1, target 1) = (query 0, query 0)
    expected = {(0, 2, 0, 1), (0, 2, 0, 0), (0, 0, 0, 0)}
    assert {tuple(index) for index in targets.positive.nonzero().tolist()} == expected
    assert targets.positive_index.tolist() == sorted(targets.positive_index.tolist())
    assert targets.positive_counts().tolist() == [3]
    assert targets.matched.tolist() == [[True, False, True]]
    connected = torch.zeros(1, 3, 3)
    connected[0, 2, 0] = connected[0, 0, 0] = 1
    torch.testing.assert_close(targets.connected(), connected)


def test_smoothing_weights_hand_computed() -> None:
    # query 0: cost 0 -> u = sigmoid(0) = 0.5, weight 0.5; query 2: cost -2 -> u = 0.1192029, weight 0.8807971
    # query 1 is unmatched: weight exactly 0; the pair (2, 0) scales its labels by 0.8807971 * 0.5 = 0.4403985
    match, target = _image_with_two_boxes()
    targets = build_relation_targets([match], [target], num_queries=3, num_predicates=2, smoothing=1e-14)
    torch.testing.assert_close(targets.uncertainty, torch.tensor([[0.5, 0.0, 0.1192029]]))
    torch.testing.assert_close(targets.weight, torch.tensor([[0.5, 0.0, 0.8807971]]))
    assert targets.weight[0, 1].item() == 0.0
    assert targets.pair_weight()[0, 2, 0].item() == pytest.approx(0.4403985, abs=1e-6)
    # logged uncertainty: mean of u_i * u_j over the 3 positive entries: 2 on (2, 0), 1 on (0, 0)
    expected = (2 * 0.1192029 * 0.5 + 0.5 * 0.5) / 3
    assert positive_pair_uncertainty(targets).item() == pytest.approx(expected, abs=1e-6)


def test_smoothing_zero_means_plain_labels() -> None:
    match, target = _image_with_two_boxes()
    targets = build_relation_targets([match], [target], num_queries=3, num_predicates=2, smoothing=0.0)
    assert targets.weight.tolist() == [[1.0, 0.0, 1.0]]
    assert targets.uncertainty.abs().sum().item() == 0.0
    assert positive_pair_uncertainty(targets).item() == 0.0


def test_weights_carry_no_gradient() -> None:
    cost = torch.tensor([0.3, -1.0], requires_grad=True)
    match = Match(torch.tensor([0, 1]), torch.tensor([0, 1]), cost)
    target = ImageTargets(torch.tensor([0, 0]), torch.rand(2, 4), torch.tensor([[0, 1, 0]]))
    targets = build_relation_targets([match], [target], num_queries=2, num_predicates=1, smoothing=1e-14)
    assert not targets.weight.requires_grad and not targets.uncertainty.requires_grad


def test_images_without_relations_or_boxes() -> None:
    empty_match = Match(torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long), torch.zeros(0))
    no_boxes = ImageTargets(
        torch.zeros(0, dtype=torch.long), torch.zeros(0, 4), torch.zeros(0, 3, dtype=torch.long)
    )
    one_box = ImageTargets(torch.tensor([1]), torch.rand(1, 4), torch.zeros(0, 3, dtype=torch.long))
    one_match = Match(torch.tensor([1]), torch.tensor([0]), torch.tensor([-3.0]))
    targets = build_relation_targets(
        [empty_match, one_match], [no_boxes, one_box], num_queries=2, num_predicates=2, smoothing=1e-14
    )
    assert not targets.positive.any() and targets.positive_index.numel() == 0
    assert targets.positive_counts().tolist() == [0, 0]
    assert targets.matched.tolist() == [[False, False], [False, True]]
    assert positive_pair_uncertainty(targets).item() == 0.0
