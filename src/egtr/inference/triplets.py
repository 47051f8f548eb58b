"""One image's post-processed prediction -> a readable SceneGraph (triplets best first, their objects).

The ranking is the evaluation's own (`egtr.evaluation.candidates`, official rules, architecture.md §5.6):
- graph constraint: one triplet per pair, its best predicate, pairs in the post-processing's order;
- no graph constraint: the best pair x predicate candidates, several predicates per pair possible;
score = s_subject * s_object * rel[predicate]. Then, in this order:
1. optional de-duplication: queries of the same class whose boxes overlap with IoU > `dedup_iou` are
   merged into the best-scoring one (greedy, best first, as in NMS); triplets are re-pointed to the kept
   queries, and self-pairs and repeats (the same pair under graph constraint, the same pair and
   predicate without) are dropped, keeping the best. The post-processing then keeps all pairs, and as
   many candidates are ranked as it takes to fill the top-k list after the merge;
2. the best `top_k` triplets are kept, then those scoring below `threshold`;
3. the objects listed are those of the kept triplets in order of first appearance, plus, with
   `object_threshold`, every other (kept) query scoring at least that much, best first.
"""

from __future__ import annotations

import numpy as np
import torch

from egtr.boxes import box_iou
from egtr.evaluation.candidates import RankedTriplets, graph_constrained_triplets, unconstrained_triplets
from egtr.evaluation.inputs import read_prediction
from egtr.inference.names import Vocabulary
from egtr.inference.scene_graph import SceneGraph, Triplet
from egtr.inference.selection import TripletOptions

PREFIX_FACTOR = 4  # de-duplication ranks 4 x top_k candidates first, then 4 times more while needed


def duplicate_representatives(
    boxes: np.ndarray, labels: np.ndarray, scores: np.ndarray, iou_threshold: float
) -> np.ndarray:
    """[N] index of the query each query merges into (itself when kept), greedy NMS by score.

    boxes [N,4] xyxy, labels [N], scores [N]. Queries are visited best first (ties: lower index); one
    joins the first kept query of its class whose box overlaps it with IoU > `iou_threshold`.
    """
    iou = box_iou(torch.as_tensor(boxes, dtype=torch.float64), torch.as_tensor(boxes, dtype=torch.float64))[0]
    iou = np.nan_to_num(iou.numpy(), nan=0.0)  # degenerate (zero-area) boxes
    merges = (iou > iou_threshold) & (labels[:, None] == labels[None, :])  # [N,N]
    representative = np.arange(len(scores))
    kept: list[int] = []
    for query in np.argsort(-scores, kind="stable"):
        partner = next((k for k in kept if merges[query, k]), None)
        if partner is None:
            kept.append(int(query))
        else:
            representative[query] = partner
    return representative


def rank_triplets(prediction: dict, options: TripletOptions) -> tuple[RankedTriplets, np.ndarray]:
    """Triplets over decoder queries, best first, and the [N] query representatives (identity without
    de-duplication). `prediction` is one image's `postprocess` dict."""
    checked = read_prediction(prediction, int(prediction["rel_scores"].shape[1]))
    rank = graph_constrained_triplets if options.graph_constraint else unconstrained_triplets
    num_queries = len(checked.scores)
    if options.dedup_iou is None:
        ranked = rank(checked, options.top_k)
        representative = np.arange(num_queries)
    else:
        representative = duplicate_representatives(
            checked.boxes, checked.labels, checked.scores, options.dedup_iou
        )
        ranked = _merged_prefix(checked, rank, representative, options)
    keep = ranked.scores >= options.threshold
    return _subset(ranked, np.flatnonzero(keep)), representative


def _subset(ranked: RankedTriplets, rows: np.ndarray) -> RankedTriplets:
    return RankedTriplets(
        ranked.subjects[rows], ranked.objects[rows], ranked.predicates[rows], ranked.scores[rows]
    )


def _merged_prefix(checked, rank, representative: np.ndarray, options: TripletOptions) -> RankedTriplets:
    """The best `top_k` merged triplets, ranking only as long a prefix of the candidates as needed.

    Dropping a candidate depends only on the candidates ranked above it, so the merged prefix of the
    best M candidates starts the merged full list; M grows until `top_k` triplets survive.
    """
    num_predicates = checked.rel_scores.shape[1]
    total = len(checked.rel_pairs) * (1 if options.graph_constraint else num_predicates)
    limit = min(PREFIX_FACTOR * options.top_k, total)
    while True:
        ranked = _merged(rank(checked, limit), representative, num_predicates, options)
        if len(ranked) >= options.top_k or limit >= total:
            return ranked
        limit = min(PREFIX_FACTOR * limit, total)


def _merged(
    ranked: RankedTriplets, representative: np.ndarray, num_predicates: int, options: TripletOptions
) -> RankedTriplets:
    subjects, objects = representative[ranked.subjects], representative[ranked.objects]
    keys = subjects * len(representative) + objects  # one int per pair
    if not options.graph_constraint:
        keys = keys * num_predicates + ranked.predicates
    _, first = np.unique(keys, return_index=True)  # first (best) occurrence of each key
    rows = np.sort(first)
    rows = rows[subjects[rows] != objects[rows]][: options.top_k]
    return RankedTriplets(subjects[rows], objects[rows], ranked.predicates[rows], ranked.scores[rows])


def listed_queries(
    ranked: RankedTriplets, scores: np.ndarray, representative: np.ndarray, object_threshold: float | None
) -> np.ndarray:
    """[K] queries to list: those of the triplets by first appearance, then the extra detections."""
    in_triplets = np.stack((ranked.subjects, ranked.objects), 1).reshape(-1)
    _, first = np.unique(in_triplets, return_index=True)
    queries = in_triplets[np.sort(first)]
    if object_threshold is None:
        return queries
    extra = np.flatnonzero((scores >= object_threshold) & (representative == np.arange(len(scores))))
    extra = extra[~np.isin(extra, queries)]
    extra = extra[np.argsort(-scores[extra], kind="stable")]
    return np.concatenate((queries, extra)).astype(np.int64)


def build_scene_graph(
    prediction: dict, options: TripletOptions, vocabulary: Vocabulary, source: str, width: int, height: int
) -> SceneGraph:
    """The SceneGraph of one image from its `postprocess` dict (CPU tensors, boxes in original pixels)."""
    ranked, representative = rank_triplets(prediction, options)
    scores = prediction["scores"].numpy()
    queries = listed_queries(ranked, scores, representative, options.object_threshold)
    position = {int(query): index for index, query in enumerate(queries)}
    labels = prediction["labels"].numpy()[queries].astype(np.int64)
    triplets = [
        Triplet(position[int(s)], int(p), position[int(o)], float(score))
        for s, p, o, score in zip(ranked.subjects, ranked.predicates, ranked.objects, ranked.scores)
    ]
    return SceneGraph(
        source=source,
        width=width,
        height=height,
        boxes=prediction["boxes"].numpy()[queries].astype(np.float32).reshape(-1, 4),
        labels=labels,
        label_names=[vocabulary.class_names[label] for label in labels],
        scores=scores[queries].astype(np.float32),
        queries=queries.astype(np.int64),
        triplets=triplets,
        predicate_names=[vocabulary.predicate_names[t.predicate] for t in triplets],
    )
