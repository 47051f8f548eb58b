"""The official post-processing rules, written out slowly.

architecture.md §5.6 states them; the official code is `train_egtr.py:evaluate_batch` (architecture.md §10).
"""

import itertools


def official_candidates(outputs, graph_constraint, image=0):
    """Every (subject query, object query, predicate, score) the official code ranks, best first.

    Object score = max softmax; rel = clamp(pred_rel) * clamp(connectivity); score = s_i * s_j * rel[p];
    graph constraint: one predicate per pair (argmax). Self-pairs, whose official prior is 0, are left
    out: the same list as long as more than top-k other candidates score above 0.
    """
    scores = outputs.logits[image].softmax(-1).max(-1).values
    rel = outputs.pred_rel[image].clamp(0, 1) * outputs.pred_connectivity[image].clamp(0, 1)[..., None]
    n = len(scores)
    candidates = []
    for i, j in itertools.product(range(n), range(n)):
        if i == j:
            continue
        prior = scores[i] * scores[j]
        predicates = [int(rel[i, j].argmax())] if graph_constraint else range(rel.shape[-1])
        candidates += [(i, j, p, float(rel[i, j, p] * prior)) for p in predicates]
    return sorted(candidates, key=lambda c: -c[3])
