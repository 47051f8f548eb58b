"""Relation and connectivity terms of the EGTR objective (architecture.md §5.5), computed in query space.

Query space: the dense ground truth is indexed by the matched query ids, positive[b, i, j, p] = True when
image b has the relation (subject, object, p) and queries i, j are matched to that subject and object.
Duplicate triplets collapse to one entry; two predicates of one pair are two entries.

Why this equals the official computation: the official code permutes the queries of each image to
[matched queries in matcher order] + [unmatched queries ascending] and the ground truth to
[matched targets in matcher order] + [zero rows]. That permutation is a bijection between its entries and
ours that keeps each entry's logit, target and smoothing weight, so its positives, its negatives (matched x
matched entries with target 0, self-pairs included) and its non-matching entries (subject or object query
unmatched) are exactly ours. Losses are means over entry sets, which do not depend on the order; the top-k
by logit picks the same multiset of logits (ties can only swap entries whose target is 0, which have the same
loss), and the random choice has the same distribution.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor
from torch.nn import functional as F

from egtr.training.matcher import Match
from egtr.training.sampling import quotas, select_entries
from egtr.training.targets import ImageTargets


@dataclass
class RelationTargets:
    """Dense relation ground truth of a batch in query space (B images, N queries, R predicates)."""

    positive: Tensor  # [B,N,N,R] bool, unsmoothed relation labels
    positive_index: Tensor  # [E] long, the positive entries as sorted indices into positive.flatten()
    matched: Tensor  # [B,N] bool, query matched to a ground-truth box
    uncertainty: Tensor  # [B,N] u = sigmoid(shifted matching cost); 0 for unmatched queries or smoothing 0
    weight: Tensor  # [B,N] smoothing weight 1 - u of matched queries; exactly 0 for unmatched queries

    def pair_weight(self) -> Tensor:
        """[B,N,N] label scale of each (subject, object) query pair: weight_i * weight_j."""
        return self.weight[:, :, None] * self.weight[:, None, :]

    def positive_counts(self) -> Tensor:
        """[B] long: positive (pair, predicate) entries per image."""
        entries_per_image = self.positive[0].numel()
        return torch.bincount(self.positive_index // entries_per_image, minlength=self.positive.shape[0])

    def connected(self) -> Tensor:
        """[B,N,N] float: 1 where the query pair has any positive predicate (the connectivity target)."""
        pairs = torch.zeros(self.positive.shape[:3], device=self.positive.device)
        pairs.view(-1)[self.positive_index // self.positive.shape[-1]] = 1.0
        return pairs


@torch.no_grad()
def build_relation_targets(
    matches: list[Match], targets: list[ImageTargets], num_queries: int, num_predicates: int, smoothing: float
) -> RelationTargets:
    """Dense query-space labels and smoothing weights (no gradient) from the final layer's matches."""
    batch_size = len(targets)
    device = matches[0].cost.device
    matched = torch.zeros(batch_size, num_queries, dtype=torch.bool, device=device)
    uncertainty = torch.zeros(batch_size, num_queries, dtype=torch.float32, device=device)
    entries = []
    for image, (match, target) in enumerate(zip(matches, targets)):
        matched[image, match.query_index] = True
        if smoothing > 0:
            uncertainty[image, match.query_index] = match.cost.float().sigmoid()
        query_of_target = torch.full((len(target.labels),), -1, dtype=torch.long, device=device)
        query_of_target[match.target_index] = match.query_index
        subject, object_, predicate = target.relations.unbind(1)
        pair = (image * num_queries + query_of_target[subject]) * num_queries + query_of_target[object_]
        entries.append(pair * num_predicates + predicate)
    shape = (batch_size, num_queries, num_queries, num_predicates)
    positive_index = torch.unique(torch.cat(entries))
    positive = torch.zeros(shape, dtype=torch.bool, device=device)
    positive.view(-1)[positive_index] = True
    weight = torch.where(matched, 1.0 - uncertainty, torch.zeros_like(uncertainty))
    return RelationTargets(positive, positive_index, matched, uncertainty, weight)


def sampled_relation_loss(
    rel_logits: Tensor,
    targets: RelationTargets,
    negatives_ratio: int | None,
    nonmatching_ratio: int | None,
    negatives_largest: bool,
    nonmatching_largest: bool,
) -> Tensor:
    """Training relation loss: one BCE mean over positives + sampled negatives + sampled non-matching entries.

    rel_logits [B,N,N,R]. Per image, up to ratio x (#positive entries) negatives (matched x matched
    entries with label 0) and as many non-matching entries (subject or object query unmatched) are kept,
    the largest logits or a random subset; a ratio of None keeps all of them. Labels are scaled by
    weight_i * weight_j. Returns 0 (with a zero gradient) when no entry is chosen.
    """
    num_queries, num_predicates = rel_logits.shape[2:]
    matched_pair = targets.matched[:, :, None, None] & targets.matched[:, None, :, None]
    positive_counts = targets.positive_counts()
    matched_counts = targets.matched.sum(1)
    matched_entry_counts = matched_counts**2 * num_predicates
    negatives = select_entries(
        rel_logits,
        targets.positive | ~matched_pair,
        quotas(positive_counts, matched_entry_counts - positive_counts, negatives_ratio),
        negatives_largest,
    )
    nonmatching = select_entries(
        rel_logits,
        matched_pair,
        quotas(positive_counts, num_queries**2 * num_predicates - matched_entry_counts, nonmatching_ratio),
        nonmatching_largest,
    )
    chosen = torch.cat((targets.positive_index, negatives, nonmatching))
    logits = rel_logits.float().flatten()[chosen]
    positive_labels = targets.pair_weight().flatten()[targets.positive_index // num_predicates]
    labels = torch.cat((positive_labels, positive_labels.new_zeros(len(negatives) + len(nonmatching))))
    loss = F.binary_cross_entropy_with_logits(logits, labels, reduction="sum")
    return loss / max(len(logits), 1)


def dense_relation_loss(rel_logits: Tensor, targets: RelationTargets) -> Tensor:
    """Validation relation loss: BCE mean over all B x N x N x R entries, labels x weight_i * weight_j."""
    labels = targets.positive.float() * targets.pair_weight()[..., None]
    return F.binary_cross_entropy_with_logits(rel_logits.float(), labels)


def connectivity_loss(connectivity_logits: Tensor, targets: RelationTargets) -> Tensor:
    """BCE mean over all B x N x N query pairs; target 1 where the pair has any relation (unsmoothed)."""
    return F.binary_cross_entropy_with_logits(connectivity_logits.float(), targets.connected())


@torch.no_grad()
def positive_pair_uncertainty(targets: RelationTargets) -> Tensor:
    """Mean u_i * u_j over the positive (pair, predicate) entries of the batch (0 when there is none)."""
    uncertainty_pair = targets.uncertainty[:, :, None] * targets.uncertainty[:, None, :]
    values = uncertainty_pair.flatten()[targets.positive_index // targets.positive.shape[-1]]
    return values.sum() / max(len(values), 1)
