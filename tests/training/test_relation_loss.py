"""Relation and connectivity losses: hand-computed tiny cases and a slow reference that follows the official
reordering literally (Python loops over entries)."""

from __future__ import annotations

import pytest
import torch

from egtr.training.matcher import Match
from egtr.training.relation import (
    RelationTargets,
    build_relation_targets,
    connectivity_loss,
    dense_relation_loss,
    sampled_relation_loss,
)
from egtr.training.targets import ImageTargets
from tests.training.relation_reference import official_relation_losses, sigmoid


def _hand_case() -> tuple[torch.Tensor, RelationTargets]:
    # N = 3 queries, R = 2 predicates; target 0 -> query 0 (cost 0: weight 0.5), target 1 -> query 2
    # (cost -2: weight 0.8807971); query 1 unmatched; one relation (target 0, target 1, predicate 0)
    match = Match(torch.tensor([0, 2]), torch.tensor([0, 1]), torch.tensor([0.0, -2.0]))
    target = ImageTargets(torch.tensor([0, 1]), torch.rand(2, 4), torch.tensor([[0, 1, 0]]))
    targets = build_relation_targets([match], [target], num_queries=3, num_predicates=2, smoothing=1e-14)
    rel_logits = torch.zeros(1, 3, 3, 2)
    rel_logits[0, 0, 2, 0] = 1.0  # the positive
    rel_logits[0, 2, 2, 1] = 3.0  # hardest negative (matched x matched, label 0)
    rel_logits[0, 0, 0, 0] = 2.0  # second hardest negative (a self pair)
    rel_logits[0, 1, 2, 0] = 4.0  # hardest non-matching entry (subject query 1 unmatched)
    rel_logits[0, 1, 1, 1] = -1.0  # a non-matching entry below the zeros
    return rel_logits.requires_grad_(), targets


def test_sampled_loss_hand_computed() -> None:
    # 1 positive entry -> ratio 1 keeps 1 negative (logit 3) and 1 non-matching entry (logit 4)
    # positive label 0.5 * 0.8807971 = 0.4403985: BCE(1, 0.4403985) = softplus(1) - 0.4403985 = 0.8728631
    # BCE(3, 0) = softplus(3) = 3.0485874; BCE(4, 0) = softplus(4) = 4.0181499 -> mean 2.6465335
    rel_logits, targets = _hand_case()
    loss = sampled_relation_loss(rel_logits, targets, 1, 1, True, True)
    assert loss.item() == pytest.approx(2.6465335, abs=1e-6)
    # ratio 2 adds the negative with logit 2 (softplus 2.1269280) and one of the tied zeros
    # (log 2 = 0.6931472)
    # -> (0.8728631 + 3.0485874 + 2.1269280 + 4.0181499 + 0.6931472) / 5 = 2.1519351
    loss = sampled_relation_loss(rel_logits, targets, 2, 2, True, True)
    assert loss.item() == pytest.approx(2.1519351, abs=1e-6)
    loss.backward()
    # gradient only on the chosen entries: 5 entries, each d(mean)/d(logit) = (sigmoid(x) - label) / 5
    assert (rel_logits.grad != 0).sum().item() == 5
    assert rel_logits.grad[0, 2, 2, 1].item() == pytest.approx(sigmoid(3.0) / 5, abs=1e-6)


def test_dense_loss_hand_computed() -> None:
    # mean over all 18 entries: softplus(1) + softplus(3) + softplus(2) + softplus(4) + softplus(-1)
    # + 13 log 2 - 0.4403985 * 1 = 19.3907035 -> / 18 = 1.0772613
    rel_logits, targets = _hand_case()
    assert dense_relation_loss(rel_logits, targets).item() == pytest.approx(1.0772613, abs=1e-6)


def test_connectivity_loss_hand_computed() -> None:
    # N = 2, pair (0, 1) related: BCE(0,0) + BCE(2,1) + BCE(-1,0) + BCE(0,0)
    # = 0.6931472 + 0.1269280 + 0.3132617 + 0.6931472 = 1.8264841 -> mean 0.4566210
    match = Match(torch.tensor([0, 1]), torch.tensor([0, 1]), torch.tensor([0.0, 0.0]))
    target = ImageTargets(torch.tensor([0, 0]), torch.rand(2, 4), torch.tensor([[0, 1, 2], [0, 1, 0]]))
    targets = build_relation_targets([match], [target], num_queries=2, num_predicates=3, smoothing=1e-14)
    logits = torch.tensor([[[0.0, 2.0], [-1.0, 0.0]]])
    assert connectivity_loss(logits, targets).item() == pytest.approx(0.4566210, abs=1e-6)


def _random_case(seed: int) -> tuple[torch.Tensor, torch.Tensor, list[Match], list[ImageTargets]]:
    """4 images, N = 6, R = 3: multi-label pairs, duplicates, images without relations or boxes."""
    generator = torch.Generator().manual_seed(seed)
    num_queries, num_predicates = 6, 3
    relations = [
        torch.tensor(
            [[0, 1, 2], [0, 1, 0], [0, 1, 2], [2, 0, 1], [3, 3, 0]]
        ),  # multi-label + duplicate + self
        torch.zeros(0, 3, dtype=torch.long),
        torch.zeros(0, 3, dtype=torch.long),
        torch.tensor([[1, 0, 1], [0, 1, 1]]),
    ]
    boxes_per_image = [4, 2, 0, 2]
    matches, targets = [], []
    for boxes, image_relations in zip(boxes_per_image, relations):
        queries = torch.randperm(num_queries, generator=generator)[:boxes].sort().values
        target_order = torch.randperm(boxes, generator=generator)
        cost = torch.randn(boxes, generator=generator) * 3 - 3
        matches.append(Match(queries, target_order, cost))
        targets.append(
            ImageTargets(torch.zeros(boxes, dtype=torch.long), torch.rand(boxes, 4), image_relations)
        )
    shape = (len(targets), num_queries, num_queries, num_predicates)
    rel_logits = torch.randn(shape, generator=generator).requires_grad_()
    connectivity_logits = torch.randn(shape[:3], generator=generator).requires_grad_()
    return rel_logits, connectivity_logits, matches, targets


@pytest.mark.parametrize("smoothing", [1e-14, 0.0])
@pytest.mark.parametrize(
    ("negatives_ratio", "nonmatching_ratio"), [(80, 80), (1, 2), (2, None), (None, 1), (None, None), (0, 3)]
)
def test_sampled_loss_matches_official_reference(
    smoothing: float, negatives_ratio: int | None, nonmatching_ratio: int | None
) -> None:
    for seed in range(3):
        rel_logits, connectivity_logits, matches, targets = _random_case(seed)
        relation_targets = build_relation_targets(matches, targets, 6, 3, smoothing)
        loss = sampled_relation_loss(
            rel_logits, relation_targets, negatives_ratio, nonmatching_ratio, True, True
        )
        expected, expected_connectivity = official_relation_losses(
            rel_logits,
            connectivity_logits,
            matches,
            targets,
            True,
            negatives_ratio,
            nonmatching_ratio,
            smoothing > 0,
        )
        assert loss.item() == pytest.approx(expected, abs=1e-5)
        assert connectivity_loss(connectivity_logits, relation_targets).item() == pytest.approx(
            expected_connectivity, abs=1e-5
        )


@pytest.mark.parametrize("smoothing", [1e-14, 0.0])
def test_dense_loss_matches_official_reference(smoothing: float) -> None:
    rel_logits, connectivity_logits, matches, targets = _random_case(4)
    relation_targets = build_relation_targets(matches, targets, 6, 3, smoothing)
    expected, _ = official_relation_losses(
        rel_logits, connectivity_logits, matches, targets, False, None, None, smoothing > 0
    )
    assert dense_relation_loss(rel_logits, relation_targets).item() == pytest.approx(expected, abs=1e-5)


def test_random_sampling_with_full_quota_equals_all_entries() -> None:
    # images 0 and 3 have relations (a ratio of None keeps every entry even of images without relations)
    rel_logits, _, matches, targets = _random_case(1)
    with_relations = [0, 3]
    relation_targets = build_relation_targets(
        [matches[i] for i in with_relations], [targets[i] for i in with_relations], 6, 3, 1e-14
    )
    rel_logits = rel_logits[with_relations]
    everything = sampled_relation_loss(rel_logits, relation_targets, None, None, True, True)
    random_full = sampled_relation_loss(rel_logits, relation_targets, 1000, 1000, False, False)
    assert random_full.item() == pytest.approx(everything.item(), abs=1e-6)


def test_random_sampling_keeps_the_quota() -> None:
    # 1 positive entry: ratio 2 keeps 2 random negatives and 3 random non-matching entries -> 6 entries,
    # each with gradient (sigmoid(x) - label) / 6
    rel_logits, targets = _hand_case()
    torch.manual_seed(0)
    sampled_relation_loss(rel_logits, targets, 2, 3, False, False).backward()
    assert (rel_logits.grad != 0).sum().item() == 6
    assert rel_logits.grad[0, 0, 2, 0].item() == pytest.approx((sigmoid(1.0) - 0.4403985) / 6, abs=1e-6)


def test_loss_is_one_mean_over_the_batch_entries() -> None:
    # two copies of one image and one image with twice the entries: a per-image mean would differ
    rel_logits, _, matches, targets = _random_case(2)
    relation_targets = build_relation_targets(matches, targets, 6, 3, 1e-14)
    per_image = []
    for image in range(len(targets)):
        single = build_relation_targets([matches[image]], [targets[image]], 6, 3, 1e-14)
        count = single.positive_counts().item()
        chosen = count * (1 + 80 + 80) if count else 0
        if chosen:
            loss = sampled_relation_loss(rel_logits[image : image + 1], single, 80, 80, True, True)
            per_image.append((loss.item(), min(chosen, 6 * 6 * 3)))
    pooled = sampled_relation_loss(rel_logits, relation_targets, 80, 80, True, True).item()
    entries = sum(count for _, count in per_image)
    assert pooled == pytest.approx(sum(loss * count for loss, count in per_image) / entries, abs=1e-5)


def test_batch_without_relations_gives_zero_with_finite_gradient() -> None:
    rel_logits, _, matches, targets = _random_case(0)
    for target in targets:
        target.relations = torch.zeros(0, 3, dtype=torch.long)
    relation_targets = build_relation_targets(matches, targets, 6, 3, 1e-14)
    loss = sampled_relation_loss(rel_logits, relation_targets, 80, 80, True, True)
    assert loss.item() == 0.0
    loss.backward()
    assert torch.equal(rel_logits.grad, torch.zeros_like(rel_logits))
