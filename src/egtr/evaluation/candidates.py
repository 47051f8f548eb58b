"""Ranked triplet candidates from one image's prediction, as each official protocol forms them.

A candidate is (subject box, object box, predicate) with the score s_subject * s_object * rel[predicate].
Ties are broken by position (earlier pair, then lower predicate): a stable descending sort. The official
code uses numpy's unstable sort, so only exactly tied scores can be ordered differently. The official
functions named below are in `lib/evaluation/sg_eval.py` and `oi_eval.py` of the official code
(architecture.md §10).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from egtr.evaluation.inputs import Prediction


@dataclass(frozen=True)
class RankedTriplets:
    """Predicted triplets, best first (C candidates)."""

    subjects: np.ndarray  # [C] int64 index into the prediction's boxes
    objects: np.ndarray  # [C] int64
    predicates: np.ndarray  # [C] int64
    scores: np.ndarray  # [C] float, s_subject * s_object * rel[predicate]

    def __len__(self) -> int:
        return len(self.predicates)


def descending_order(scores: np.ndarray, top_k: int) -> np.ndarray:
    """Indices of the `top_k` largest of `scores` [n], best first, ties by lower index (stable sort)."""
    negated = -scores
    if top_k >= len(scores):
        return np.argsort(negated, kind="stable")
    kth_value = np.partition(negated, top_k - 1)[top_k - 1]
    contenders = np.flatnonzero(negated <= kth_value)  # all values tied with the k-th stay in the race
    return contenders[np.argsort(negated[contenders], kind="stable")[:top_k]]


def pair_prior(prediction: Prediction) -> np.ndarray:
    """[P] s_subject * s_object of each predicted pair (the official `outer(scores, scores)` entries)."""
    return prediction.scores[prediction.rel_pairs[:, 0]] * prediction.scores[prediction.rel_pairs[:, 1]]


def graph_constrained_triplets(prediction: Prediction, top_k: int) -> RankedTriplets:
    """One triplet per pair (its best predicate) for the first `top_k` pairs, in the given pair order.

    As the reference (`sg_eval.evaluate_from_dict` without multiple_preds), the pair order of the input is
    trusted: `rel_pairs` must already be sorted best first.
    """
    pairs = prediction.rel_pairs[:top_k]
    rel_scores = prediction.rel_scores[:top_k]
    predicates = rel_scores.argmax(axis=1)  # first maximum on ties, as numpy's argmax in the reference
    best = rel_scores[np.arange(len(predicates)), predicates]
    return RankedTriplets(
        pairs[:, 0], pairs[:, 1], predicates.astype(np.int64), pair_prior(prediction)[:top_k] * best
    )


def unconstrained_triplets(prediction: Prediction, top_k: int) -> RankedTriplets:
    """No graph constraint: the `top_k` best of all pair x predicate candidates (several per pair)."""
    num_predicates = prediction.rel_scores.shape[1]
    triplet_scores = (pair_prior(prediction)[:, None] * prediction.rel_scores).ravel()
    order = descending_order(triplet_scores, top_k)
    pairs = prediction.rel_pairs[order // num_predicates]
    return RankedTriplets(pairs[:, 0], pairs[:, 1], order % num_predicates, triplet_scores[order])


def open_images_triplets(
    prediction: Prediction, top_k: int = 100, predicates_per_pair: int = 2, min_score: float = 1e-5
) -> RankedTriplets:
    """Open Images candidates (PySGG `eval_rel_results`): the `predicates_per_pair` best predicates of each
    pair, the `top_k` best of those, then only scores > `min_score`."""
    by_score = np.argsort(-prediction.rel_scores, axis=1, kind="stable")[:, :predicates_per_pair]
    best_scores = np.take_along_axis(prediction.rel_scores, by_score, axis=1)
    candidate_scores = (pair_prior(prediction)[:, None] * best_scores).ravel()
    order = descending_order(candidate_scores, top_k)
    order = order[candidate_scores[order] > min_score]
    pairs = prediction.rel_pairs[order // by_score.shape[1]]
    return RankedTriplets(pairs[:, 0], pairs[:, 1], by_score.ravel()[order], candidate_scores[order])
