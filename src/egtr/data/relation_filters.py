"""Filters of an image's relations used by the official training pipelines.

relations: int64 [T,3] (subject, object, predicate).
"""

from __future__ import annotations

import random

import numpy as np


def remove_duplicate_triplets(relations: np.ndarray) -> np.ndarray:
    """Drop exact repeats of (subject, object, predicate), keeping first occurrences in order.

    This is what the official Open Images loader's `filter_duplicate_rels` does (despite its comment).
    """
    if len(relations) == 0:
        return relations
    _, first = np.unique(relations, axis=0, return_index=True)
    return relations[np.sort(first)]


def single_predicate_per_pair(relations: np.ndarray, rng: random.Random) -> np.ndarray:
    """One predicate per (subject, object) pair, drawn uniformly among that pair's relations.

    Pairs keep the order of their first occurrence. This is SGB's train-time `filter_duplicate_rels` and
    the official Open Images `filter_multiple_rels`, redrawn at every access.
    """
    predicates_of_pair: dict[tuple[int, int], list[int]] = {}
    for subject, object_, predicate in relations.tolist():
        predicates_of_pair.setdefault((subject, object_), []).append(predicate)
    chosen = [(s, o, rng.choice(options)) for (s, o), options in predicates_of_pair.items()]
    return np.array(chosen, dtype=np.int64).reshape(-1, 3)
