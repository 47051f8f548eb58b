"""Slow, obviously-correct re-statements of the official evaluators (plain loops, one image at a time).

They follow the structure of the reference code: neural-motifs `evaluate_from_dict` / `evaluate_recall` /
`_compute_pred_matches` with the Cython +1-pixel `bbox_overlaps`, one evaluator per predicate for mR
(`calculate_mR_from_evaluator_list`), Scene-Graph-Benchmark zero-shot recall, and PySGG's
`eval_rel_results` / `prepare_mAP_dets` / `ap_eval` / `get_ap` for Open Images. Ties are broken by
position (stable sorts), as the vectorized code documents. The reference code is the copy the official
EGTR runs (`lib/evaluation/sg_eval.py`, `oi_eval.py`, `ap_eval_rel.py`); repositories and commits are in
architecture.md §10.
"""

from __future__ import annotations

import math

import numpy as np


def iou_plus_one(box_a, box_b) -> float:
    """Cython bbox_overlaps for one pair (float64)."""
    box_a = [float(v) for v in box_a]
    box_b = [float(v) for v in box_b]
    query_area = (box_b[2] - box_b[0] + 1) * (box_b[3] - box_b[1] + 1)
    iw = min(box_a[2], box_b[2]) - max(box_a[0], box_b[0]) + 1
    if iw > 0:
        ih = min(box_a[3], box_b[3]) - max(box_a[1], box_b[1]) + 1
        if ih > 0:
            ua = (box_a[2] - box_a[0] + 1) * (box_a[3] - box_a[1] + 1) + query_area - iw * ih
            return iw * ih / ua
    return 0.0


def iou_intersection_plus_one(box_a, box_b) -> np.float32:
    """PySGG bbox_iou for one pair: float32, +1 on the intersection only."""
    a = [np.float32(v) for v in box_a]
    b = [np.float32(v) for v in box_b]
    one, zero = np.float32(1), np.float32(0)
    width = max(min(a[2], b[2]) - max(a[0], b[0]) + one, zero)
    height = max(min(a[3], b[3]) - max(a[1], b[1]) + one, zero)
    inter = width * height
    area_a = (a[2] - a[0]) * (a[3] - a[1])
    area_b = (b[2] - b[0]) * (b[3] - b[1])
    return inter / (area_a + area_b - inter)


def unique_relations(relations) -> list[tuple[int, int, int]]:
    return sorted({tuple(int(v) for v in row) for row in np.asarray(relations).reshape(-1, 3)})


def graph_constrained_list(pred, top_k):
    """[(subject, object, predicate)] for the first top_k pairs, best predicate each."""
    triplets = []
    for (s, o), scores in list(zip(pred["rel_pairs"], pred["rel_scores"]))[:top_k]:
        triplets.append((int(s), int(o), int(np.argmax(scores))))
    return triplets


def unconstrained_list(pred, top_k):
    """Best top_k (subject, object, predicate) by float32 s_s * s_o * rel, stable on ties."""
    candidates = []
    for position, ((s, o), scores) in enumerate(zip(pred["rel_pairs"], pred["rel_scores"])):
        prior = np.float32(pred["scores"][s]) * np.float32(pred["scores"][o])
        for p, value in enumerate(scores):
            candidates.append((-(prior * np.float32(value)), position, p, int(s), int(o)))
    candidates.sort(key=lambda c: (c[0], c[1], c[2]))
    return [(s, o, p) for _, _, p, s, o in candidates[:top_k]]


def pred_to_gt(pred_triplets, gt_relations, gt, pred, iou_threshold=0.5):
    """For each predicted triplet, the indices of the ground-truth relations it hits."""
    matches = []
    for s, o, p in pred_triplets:
        hit = []
        for index, (gs, go, gp) in enumerate(gt_relations):
            same_classes = (
                pred["labels"][s] == gt["labels"][gs] and pred["labels"][o] == gt["labels"][go] and p == gp
            )
            if (
                same_classes
                and iou_plus_one(gt["boxes"][gs], pred["boxes"][s]) >= iou_threshold
                and iou_plus_one(gt["boxes"][go], pred["boxes"][o]) >= iou_threshold
            ):
                hit.append(index)
        matches.append(hit)
    return matches


def recall_at(matches, k, num_gt) -> float:
    hit = set()
    for row in matches[:k]:
        hit.update(row)
    return len(hit) / num_gt


def reference_sgdet(images, num_predicates, ks, multiple_preds, seen_triplets=None):
    """images: [(gt, pred)] -> {"R@K", "mR@K", "zR@K"} per the reference evaluators (None where undefined)."""
    top_k = max(ks)
    recalls = {k: [] for k in ks}
    per_predicate = {p: {k: [] for k in ks} for p in range(num_predicates)}
    zero_shot = {k: [] for k in ks}
    for gt, pred in images:
        relations = unique_relations(gt["relations"])
        if not relations:
            continue
        select = unconstrained_list if multiple_preds else graph_constrained_list
        triplets = select(pred, top_k)
        for k in ks:
            recalls[k].append(recall_at(pred_to_gt(triplets, relations, gt, pred), k, len(relations)))
        for p in range(
            num_predicates
        ):  # one evaluator per predicate, same predictions, filtered ground truth
            filtered = [r for r in relations if r[2] == p]
            if filtered:
                matches = pred_to_gt(triplets, filtered, gt, pred)
                for k in ks:
                    per_predicate[p][k].append(recall_at(matches, k, len(filtered)))
        if seen_triplets is not None:
            unseen = [
                index
                for index, (s, o, p) in enumerate(relations)
                if (int(gt["labels"][s]), int(gt["labels"][o]), p) not in seen_triplets
            ]
            if unseen:
                matches = pred_to_gt(triplets, relations, gt, pred)
                for k in ks:
                    hit = set().union(*matches[:k]) if matches[:k] else set()
                    zero_shot[k].append(len(hit & set(unseen)) / len(unseen))
    result = {}
    for k in ks:
        result[f"R@{k}"] = float(np.mean(recalls[k])) if recalls[k] else None
        total, defined = 0.0, False
        for p in range(num_predicates):
            if per_predicate[p][k]:
                total += float(np.mean(per_predicate[p][k]))
                defined = True
        result[f"mR@{k}"] = total / num_predicates if defined else None
        result[f"zR@{k}"] = float(np.mean(zero_shot[k])) if zero_shot[k] else None
    return result


def open_images_candidates(pred, top_k=100, predicates_per_pair=2, min_score=1e-5):
    """[(score, subject, object, predicate)] as PySGG eval_rel_results, best first."""
    candidates = []
    for position, ((s, o), scores) in enumerate(zip(pred["rel_pairs"], pred["rel_scores"])):
        prior = np.float32(pred["scores"][s]) * np.float32(pred["scores"][o])
        ranked = sorted(range(len(scores)), key=lambda p: (-scores[p], p))[:predicates_per_pair]
        for rank, p in enumerate(ranked):
            candidates.append((-(prior * np.float32(scores[p])), position, rank, int(s), int(o), p))
    candidates.sort(key=lambda c: c[:3])
    return [(-c[0], c[3], c[4], c[5]) for c in candidates[:top_k] if -c[0] > min_score]


def union_box(box_a, box_b):
    return [
        min(box_a[0], box_b[0]),
        min(box_a[1], box_b[1]),
        max(box_a[2], box_b[2]),
        max(box_a[3], box_b[3]),
    ]


def get_ap(recall, precision) -> float:
    mrec = [0.0, *recall, 1.0]
    mpre = [0.0, *precision, 0.0]
    for i in range(len(mpre) - 1, 0, -1):
        mpre[i - 1] = max(mpre[i - 1], mpre[i])
    return float(
        sum((mrec[i + 1] - mrec[i]) * mpre[i + 1] for i in range(len(mrec) - 1) if mrec[i + 1] != mrec[i])
    )


def reference_open_images(images, num_predicates, recall_ks=(50,), top_k=100):
    """images: [(gt, pred)] -> {"R@K" (micro), "wmAP_rel", "wmAP_phr", "score_wtd", "AP_rel", "AP_phr"}."""
    hits, total = dict.fromkeys(recall_ks, 0), 0
    detections = {
        c: [] for c in range(num_predicates)
    }  # (score, image, sub box, obj box, sub label, obj label)
    truths = {c: {} for c in range(num_predicates)}
    npos = [0] * num_predicates
    for image, (gt, pred) in enumerate(images):
        relations = unique_relations(gt["relations"])
        if not relations:
            continue
        candidates = open_images_candidates(pred, top_k)
        matches = pred_to_gt([(s, o, p) for _, s, o, p in candidates], relations, gt, pred)
        for k in recall_ks:
            hits[k] += len(set().union(*matches[:k])) if matches else 0
        total += len(relations)
        for score, s, o, p in candidates:
            detections[p].append(
                (score, image, pred["boxes"][s], pred["boxes"][o], pred["labels"][s], pred["labels"][o])
            )
        for c in range(num_predicates):
            own = [
                (gt["boxes"][s], gt["boxes"][o], gt["labels"][s], gt["labels"][o])
                for s, o, p in relations
                if p == c
            ]
            truths[c][image] = own
            npos[c] += len(own)
    result = {f"R@{k}": hits[k] / (total + 1e-12) for k in recall_ks}
    result.update(AP_rel=[], AP_phr=[])
    for kind in ("rel", "phr"):
        weighted = 0.0
        for c in range(num_predicates):
            ranked = sorted(enumerate(detections[c]), key=lambda item: (-item[1][0], item[0]))
            visited = {image: [False] * len(own) for image, own in truths[c].items()}
            tp, fp = [], []
            for _, (_, image, sub_box, obj_box, sub_label, obj_label) in ranked:
                best, best_index = -math.inf, -1
                own = truths[c][image]
                if own:
                    best = 0.0
                    for index, (gt_sub, gt_obj, gt_sub_label, gt_obj_label) in enumerate(own):
                        if gt_sub_label != sub_label or gt_obj_label != obj_label:
                            continue
                        if kind == "rel":
                            overlap = min(
                                iou_intersection_plus_one(sub_box, gt_sub),
                                iou_intersection_plus_one(obj_box, gt_obj),
                            )
                        else:
                            overlap = iou_intersection_plus_one(
                                union_box(sub_box, obj_box), union_box(gt_sub, gt_obj)
                            )
                        if overlap > best:
                            best, best_index = overlap, index
                if best > 0.5 and not visited[image][best_index]:
                    visited[image][best_index] = True
                    tp.append(1.0)
                    fp.append(0.0)
                else:
                    tp.append(0.0)
                    fp.append(1.0)
            tp, fp = np.cumsum(tp), np.cumsum(fp)
            recall = tp / (float(npos[c]) + 1e-12)
            precision = tp / np.maximum(tp + fp, np.finfo(np.float64).eps)
            ap = get_ap(list(recall), list(precision))
            result[f"AP_{kind}"].append(ap)
            weighted += ap * float(npos[c]) / float(sum(npos))
        result[f"wmAP_{kind}"] = weighted
    result["score_wtd"] = result["wmAP_rel"] * 0.4 + result["wmAP_phr"] * 0.4 + result["R@50"] * 0.2
    return result
