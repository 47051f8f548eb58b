"""Zero-shot triplets: (subject class, object class, predicate) combinations never seen in training."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

_BITS = 21  # each of subject class, object class, predicate must be < 2**21 to share one int64 key


def triplet_keys(class_triplets: np.ndarray) -> np.ndarray:
    """[N,3] (subject class, object class, predicate) -> [N] int64 keys, one per distinct triplet."""
    class_triplets = np.asarray(class_triplets, dtype=np.int64).reshape(-1, 3)
    if class_triplets.size and (class_triplets.min() < 0 or class_triplets.max() >= 1 << _BITS):
        raise ValueError(f"class triplets must hold integers in [0, {1 << _BITS})")
    return (class_triplets[:, 0] << (2 * _BITS)) | (class_triplets[:, 1] << _BITS) | class_triplets[:, 2]


def seen_triplet_keys(triplets: Iterable[tuple[int, int, int]] | np.ndarray) -> np.ndarray:
    """Sorted unique keys of the training triplets, from a set of 3-tuples or an [N,3] array."""
    array = np.asarray(list(triplets) if not isinstance(triplets, np.ndarray) else triplets, dtype=np.int64)
    return np.unique(triplet_keys(array))


def class_triplets(labels: np.ndarray, relations: np.ndarray) -> np.ndarray:
    """[T,3] (subject class, object class, predicate) of relations [T,3] over boxes labelled `labels` [M]."""
    return np.stack((labels[relations[:, 0]], labels[relations[:, 1]], relations[:, 2]), axis=1)


def training_triplets(records: Iterable) -> np.ndarray:
    """[N,3] distinct (subject class, object class, predicate) of dataset records (`labels`, `relations`)."""
    parts = [class_triplets(np.asarray(r.labels), np.asarray(r.relations).reshape(-1, 3)) for r in records]
    if not parts:
        return np.zeros((0, 3), dtype=np.int64)
    return np.unique(np.concatenate(parts).astype(np.int64), axis=0)


def unseen(keys: np.ndarray, seen_keys: np.ndarray) -> np.ndarray:
    """[n] bool: which of `keys` are not in the sorted unique `seen_keys` (binary search)."""
    positions = np.minimum(np.searchsorted(seen_keys, keys), max(len(seen_keys) - 1, 0))
    return seen_keys[positions] != keys if len(seen_keys) else np.ones(len(keys), dtype=bool)
