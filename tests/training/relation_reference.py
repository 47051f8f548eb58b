"""Slow, obviously-correct relation and connectivity losses that follow the official code literally.

Python loops over every entry of each image after the official reordering (the criterion of the official
`model/egtr.py`, architecture.md §10); used as the reference for the vectorized query-space implementation.
"""

from __future__ import annotations

import math

import torch

from egtr.training.matcher import Match
from egtr.training.targets import ImageTargets

NONMATCHING_COST = -math.log(1e-8) * 2 + 4 * 5 + 2 * 2 - math.log(1 / 1e-14 - 1)  # official, ≈ 28.6


def _softplus(x: float) -> float:
    return max(x, 0.0) + math.log1p(math.exp(-abs(x)))


def _bce(logit: float, label: float) -> float:
    return _softplus(logit) - label * logit


def sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def official_relation_losses(
    rel_logits: torch.Tensor,
    connectivity_logits: torch.Tensor,
    matches: list[Match],
    targets: list[ImageTargets],
    training: bool,
    negatives_ratio: int | None,
    nonmatching_ratio: int | None,
    smoothing: bool,
) -> tuple[float, float]:
    """(loss_rel, loss_connectivity) computed as the official criterion does, with hardest sampling.

    Per image: queries reordered to [matched in matcher order] + [unmatched ascending], the dense ground truth
    to [matched targets in matcher order] + [zero rows]; positives, negatives of the matched block and
    non-matching entries listed; top-k by logit; one mean over every entry of the batch.
    """
    num_queries, num_predicates = rel_logits.shape[2], rel_logits.shape[3]
    entry_losses, connectivity_means = [], []
    for image, (match, target) in enumerate(zip(matches, targets)):
        dense = [[[0.0] * num_predicates for _ in range(num_queries)] for _ in range(num_queries)]
        for subject, object_, predicate in target.relations.tolist():
            dense[subject][object_][predicate] = 1.0
        sources = match.query_index.tolist()
        order = sources + [query for query in range(num_queries) if query not in sources]
        target_order = match.target_index.tolist() + list(range(len(sources), num_queries))
        if smoothing:
            costs = match.cost.tolist() + [NONMATCHING_COST] * (num_queries - len(sources))
            weights = [1 - sigmoid(cost) for cost in costs]
        else:
            weights = [1.0] * len(sources) + [0.0] * (num_queries - len(sources))

        def logit(a: int, b: int, p: int, image: int = image, order: list[int] = order) -> float:
            return rel_logits[image, order[a], order[b], p].item()

        def label(
            a: int, b: int, p: int, dense: list = dense, target_order: list[int] = target_order
        ) -> float:
            return dense[target_order[a]][target_order[b]][p]

        pair_losses = []
        for a in range(num_queries):
            for b in range(num_queries):
                connected = float(any(label(a, b, p) for p in range(num_predicates)))
                pair_losses.append(_bce(connectivity_logits[image, order[a], order[b]].item(), connected))
        connectivity_means.append(sum(pair_losses) / len(pair_losses))

        entries = [
            (a, b, p) for a in range(num_queries) for b in range(num_queries) for p in range(num_predicates)
        ]
        if training:
            matched = len(sources)
            positives = [
                (a, b, p) for a, b, p in entries if a < matched and b < matched and label(a, b, p) == 1
            ]
            negatives = [
                (a, b, p) for a, b, p in entries if a < matched and b < matched and label(a, b, p) != 1
            ]
            nonmatching = [(a, b, p) for a, b, p in entries if not (a < matched and b < matched)]
            for ratio, candidates in ((negatives_ratio, negatives), (nonmatching_ratio, nonmatching)):
                if ratio is not None:
                    candidates.sort(key=lambda entry: -logit(*entry))
                    del candidates[min(ratio * len(positives), len(candidates)) :]
            entries = positives + negatives + nonmatching
        for a, b, p in entries:
            entry_losses.append(_bce(logit(a, b, p), label(a, b, p) * weights[a] * weights[b]))
    return sum(entry_losses) / len(entry_losses), sum(connectivity_means) / len(connectivity_means)
