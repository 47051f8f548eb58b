"""Visual Genome SGDet recall: R@K, mR@K, ngR@K, ngmR@K, zR@K, F1@K (architecture.md §5.8).

Reproduces the neural-motifs / KERN evaluator that the official EGTR runs (its `lib/evaluation/sg_eval.py`
with `calculate_mR_from_evaluator_list`; repositories and commits: architecture.md §10):
- ground-truth triplets are the distinct (subject, object, predicate) rows of an image;
- R@K per image = |ground-truth triplets hit by the first K predictions| / |ground-truth triplets|,
  averaged over images; images without a ground-truth relation are skipped (the reference asserts) and
  counted;
- graph constraint (R@K, the official default): the first K pairs of `rel_pairs`, each with its best
  predicate; no graph constraint (ngR@K): the K best pair x predicate candidates by s_sub * s_obj * rel;
- mR@K: for each predicate p, R@K over the images that have p, with ground truth restricted to p and the
  same predictions; mR@K = sum over the predicates that occur / number of ALL predicates;
- zR@K (Scene-Graph-Benchmark): recall of the ground-truth triplets whose class triplet never occurs in
  training, over the images that have one;
- F1@K = 2 R mR / (R + mR).
Undefined values (e.g. no zero-shot ground truth) are None.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from egtr.evaluation.candidates import graph_constrained_triplets, unconstrained_triplets
from egtr.evaluation.inputs import read_image_inputs
from egtr.evaluation.matching import box_label_matches, first_hit_ranks
from egtr.evaluation.zero_shot import class_triplets, seen_triplet_keys, triplet_keys, unseen

DEFAULT_RECALL_KS = (20, 50, 100)
CONSTRAINTS = {"": "graph constraint", "ng": "no graph constraint"}


class SceneGraphEvaluator:
    """Accumulates per-image results with `update(groundtruth, prediction)`; `compute()` returns the metrics.

    `num_predicates` is R (the mR denominator). `zero_shot_triplets`: the (subject class, object class,
    predicate) triplets seen in training, as a set of tuples or an [N,3] array; enables zR@K and ngzR@K.
    """

    def __init__(
        self,
        num_predicates: int,
        ks: Sequence[int] = DEFAULT_RECALL_KS,
        *,
        iou_threshold: float = 0.5,
        zero_shot_triplets: Iterable[tuple[int, int, int]] | np.ndarray | None = None,
        predicate_names: Sequence[str] | None = None,
    ):
        if num_predicates < 1:
            raise ValueError(f"num_predicates must be >= 1, got {num_predicates}")
        if not ks or min(ks) < 1:
            raise ValueError(f"recall K values must be >= 1, got {list(ks)}")
        if predicate_names is not None and len(predicate_names) != num_predicates:
            raise ValueError(f"{len(predicate_names)} predicate names for {num_predicates} predicates")
        self.num_predicates = num_predicates
        self.ks = tuple(sorted(set(int(k) for k in ks)))
        self.iou_threshold = iou_threshold
        self.predicate_names = list(predicate_names) if predicate_names is not None else None
        self._seen_keys = None if zero_shot_triplets is None else seen_triplet_keys(zero_shot_triplets)
        self.reset()

    def reset(self) -> None:
        self._columns: dict[str, list[np.ndarray]] = {
            name: [] for name in ("image", "predicate", "zero_shot", "rank", "ngrank")
        }
        self._num_images = 0
        self._images_without_relations = 0

    def update(self, groundtruth: Mapping, prediction: Mapping, image_id: object | None = None) -> None:
        """Add one image (architecture.md §4 dicts). `image_id` only names the image in error messages."""
        truth, predicted = read_image_inputs(groundtruth, prediction, self.num_predicates, image_id)
        if len(truth.relations) == 0:
            self._images_without_relations += 1
            return
        matches = box_label_matches(predicted, truth, self.iou_threshold)
        top_k = self.ks[-1]
        columns = self._columns
        columns["image"].append(np.full(len(truth.relations), self._num_images, dtype=np.int64))
        columns["predicate"].append(truth.relations[:, 2])
        columns["rank"].append(
            first_hit_ranks(graph_constrained_triplets(predicted, top_k), truth.relations, matches)
        )
        columns["ngrank"].append(
            first_hit_ranks(unconstrained_triplets(predicted, top_k), truth.relations, matches)
        )
        if self._seen_keys is not None:
            keys = triplet_keys(class_triplets(truth.labels, truth.relations))
            columns["zero_shot"].append(unseen(keys, self._seen_keys))
        self._num_images += 1

    def compute(self) -> dict:
        """Metrics as fractions in [0,1] (None where undefined), `per_predicate` rows and `counts`.

        Keys, for each K: R@K, mR@K, F1@K (graph constraint), ngR@K, ngmR@K, ngF1@K (no graph constraint),
        and zR@K, ngzR@K when training triplets were given.
        """
        columns = {
            name: np.concatenate(parts) if parts else np.zeros(0, np.int64)
            for name, parts in self._columns.items()
        }
        image, predicate = columns["image"], columns["predicate"]
        zero_shot = columns["zero_shot"].astype(bool) if self._seen_keys is not None else None
        groups = PredicateImageGroups(image, predicate, self.num_predicates)
        metrics: dict = {}
        per_predicate: dict[str, np.ndarray] = {}
        for prefix in CONSTRAINTS:
            hits = {k: columns[f"{prefix}rank"] < k for k in self.ks}
            recall = {k: image_mean_recall(image, hits[k]) for k in self.ks}
            per_predicate.update({f"{prefix}R@{k}": groups.recalls(hits[k]) for k in self.ks})
            mean_recall = {k: official_mean_recall(per_predicate[f"{prefix}R@{k}"]) for k in self.ks}
            metrics.update({f"{prefix}R@{k}": recall[k] for k in self.ks})
            metrics.update({f"{prefix}mR@{k}": mean_recall[k] for k in self.ks})
            metrics.update({f"{prefix}F1@{k}": f1_score(recall[k], mean_recall[k]) for k in self.ks})
            if zero_shot is not None:
                metrics.update(
                    {
                        f"{prefix}zR@{k}": image_mean_recall(image[zero_shot], hits[k][zero_shot])
                        for k in self.ks
                    }
                )
        metrics["per_predicate"] = self._per_predicate_table(groups, per_predicate)
        metrics["counts"] = self._counts(image, zero_shot)
        return metrics

    def _per_predicate_table(
        self, groups: PredicateImageGroups, recalls: dict[str, np.ndarray]
    ) -> list[dict]:
        rows = []
        for p in range(self.num_predicates):
            row = {"predicate": p, "name": self.predicate_names[p] if self.predicate_names else str(p)}
            row.update(gt_triplets=int(groups.triplets[p]), images=int(groups.images[p]))
            row.update({name: _optional(values[p]) for name, values in recalls.items()})
            rows.append(row)
        return rows

    def _counts(self, image: np.ndarray, zero_shot: np.ndarray | None) -> dict:
        counts = {
            "images": self._num_images,
            "images_without_relations": self._images_without_relations,
            "gt_triplets": len(image),
        }
        if zero_shot is not None:
            counts["zero_shot_gt_triplets"] = int(zero_shot.sum())
            counts["images_with_zero_shot"] = len(np.unique(image[zero_shot]))
        return counts


def image_mean_recall(image: np.ndarray, hit: np.ndarray) -> float | None:
    """Mean over images of hits / ground-truth triplets; `image` [T], `hit` [T] per ground-truth triplet."""
    counts = np.bincount(image)
    present = counts > 0
    if not present.any():
        return None
    hits = np.bincount(image, weights=hit, minlength=len(counts))
    return float(np.mean(hits[present] / counts[present]))


class PredicateImageGroups:
    """Ground-truth triplets grouped by (predicate, image): the reference's per-predicate evaluators see,
    for each image that has predicate p, the ground truth restricted to p."""

    def __init__(self, image: np.ndarray, predicate: np.ndarray, num_predicates: int):
        stride = int(image.max()) + 1 if len(image) else 1
        keys, self._group_of_triplet, self._group_sizes = np.unique(
            predicate * stride + image, return_inverse=True, return_counts=True
        )
        group_predicate = keys // stride
        self._bounds = np.searchsorted(group_predicate, np.arange(num_predicates + 1))
        self.triplets = np.bincount(predicate, minlength=num_predicates)  # [R] ground-truth triplets
        self.images = np.diff(self._bounds)  # [R] images having the predicate

    def recalls(self, hit: np.ndarray) -> np.ndarray:
        """[R] per-predicate recall (mean over its images, in image order); NaN for absent predicates."""
        group_recall = np.bincount(self._group_of_triplet, weights=hit, minlength=len(self._group_sizes))
        group_recall = group_recall / self._group_sizes
        recalls = np.full(len(self.images), np.nan)
        for p in np.flatnonzero(self.images):
            recalls[p] = np.mean(group_recall[self._bounds[p] : self._bounds[p + 1]])
        return recalls


def official_mean_recall(recalls: np.ndarray) -> float | None:
    """Sum of the defined per-predicate recalls divided by the number of ALL predicates (reference rule)."""
    if np.isnan(recalls).all():
        return None
    total = 0.0
    for value in recalls:  # sequential sum in predicate order, as the reference
        if not np.isnan(value):
            total += float(value)
    return total / len(recalls)


def f1_score(recall: float | None, mean_recall: float | None) -> float | None:
    """2 R mR / (R + mR); 0 when both are 0; None when either is undefined."""
    if recall is None or mean_recall is None:
        return None
    if recall + mean_recall == 0:
        return 0.0
    return 2 * recall * mean_recall / (recall + mean_recall)


def _optional(value: float) -> float | None:
    return None if np.isnan(value) else float(value)
