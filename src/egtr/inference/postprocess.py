"""Model outputs -> per-image scene-graph predictions, the evaluator inputs of architecture.md §4.

The official rules (architecture.md §5.6: the official `train_egtr.py:evaluate_batch`, and for the
detection list `DeformableDetrFeatureExtractor.post_process` of the official `model/deformable_detr.py`,
from Hugging Face transformers; repositories and commits in architecture.md §10), per image:
- object score and label = max of softmax over the C class logits (sigmoid as an option);
- boxes: normalized cxcywh -> xyxy in original-image pixels;
- rel = clamp(pred_rel, 0, 1) * clamp(pred_connectivity, 0, 1) [N,N,R]; pair prior = s_i * s_j;
- graph constraint: pair score = max_p rel * prior, best `top_k` pairs;
- no graph constraint: triplet score = rel[p] * prior over all N x N x R, best `top_k` triplets;
- Visual Genome drops self-pairs (i, i) (officially their prior is 0, so they could only show up when
  fewer than `top_k` other pairs exist: N <= 10 queries for top_k = 100); Open Images keeps them;
- detection AP list: VG = best `detection_top_k` (query, class) of sigmoid(logits) over N x C
  (several classes per query possible); OI = every query with its object score and label.

One prediction serves every protocol: `rel_pairs` holds the best `top_k` pairs by pair score, best first
(ties: lower flat index i * N + j first), with their full predicate vectors. These are exactly the
graph-constrained list, and they contain every pair of the best K <= top_k triplets without graph
constraint: each pair ranked above the pair of such a triplet contributes a better triplet (its best
predicate), so at most K - 1 pairs rank above it. The same argument covers the Open Images candidates
(best 2 predicates per pair, best 100 of those). `tests/inference/test_postprocess.py` checks this
against a brute force over all N x N x R.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from egtr.boxes import cxcywh_to_xyxy, scale_boxes
from egtr.inference.selection import OBJECT_SCORES

DETECTION_LISTS = ("sigmoid_top", "queries")


@dataclass(frozen=True)
class PostprocessOptions:
    top_k: int = 100  # pairs (graph constraint) and triplets (no graph constraint) kept per image
    keep_diagonal: bool = False  # keep self-pairs (i, i): False for VG (official), True for Open Images
    object_score: str = "softmax"  # "softmax" (official) or "sigmoid" (matches the focal training loss)
    detections: str = "sigmoid_top"  # detection-AP list: "sigmoid_top" (VG) or "queries" (Open Images)
    detection_top_k: int = 100  # size of the "sigmoid_top" list

    def __post_init__(self) -> None:
        if self.object_score not in OBJECT_SCORES:
            raise ValueError(f"object_score must be one of {OBJECT_SCORES}, got {self.object_score!r}")
        if self.detections not in DETECTION_LISTS:
            raise ValueError(f"detections must be one of {DETECTION_LISTS}, got {self.detections!r}")
        if self.top_k < 1 or self.detection_top_k < 1:
            raise ValueError("top_k and detection_top_k must be >= 1")

    @classmethod
    def visual_genome(cls) -> PostprocessOptions:
        return cls()

    @classmethod
    def open_images(cls) -> PostprocessOptions:
        return cls(keep_diagonal=True, detections="queries")

    @classmethod
    def for_protocol(cls, protocol: str) -> PostprocessOptions:
        """Official options of an evaluation protocol ("vg" or "oi")."""
        presets = {"vg": cls.visual_genome, "oi": cls.open_images}
        if protocol not in presets:
            raise ValueError(f"protocol must be one of {tuple(presets)}, got {protocol!r}")
        return presets[protocol]()


@torch.no_grad()
def postprocess(outputs, image_sizes: Tensor, options: PostprocessOptions | None = None) -> list[dict]:
    """Per-image prediction dicts (CPU tensors) from an `EGTROutput` of B images.

    `outputs` needs `logits` [B,N,C], `pred_boxes` [B,N,4] (normalized cxcywh), `pred_rel` [B,N,N,R] and
    `pred_connectivity` [B,N,N]; `image_sizes` [B,2] holds the original (height, width). Each dict has
    `boxes` [N,4] xyxy pixels, `labels` [N], `scores` [N], `rel_pairs` [P,2] (best first), `rel_scores`
    [P,R] (rel, without the prior) and `detections` {`boxes`, `labels`, `scores`}.
    """
    options = options or PostprocessOptions()
    image_sizes = torch.as_tensor(image_sizes, dtype=torch.float32)
    if image_sizes.shape != (len(outputs.logits), 2):
        raise ValueError(
            f"image_sizes must be [B,2] (height, width) for B={len(outputs.logits)}, "
            f"got {list(image_sizes.shape)}"
        )
    return [
        _image_prediction(
            outputs.logits[b].float(),
            outputs.pred_boxes[b].float(),
            outputs.pred_rel[b].float(),
            outputs.pred_connectivity[b].float(),
            image_sizes[b],
            options,
        )
        for b in range(len(outputs.logits))
    ]


def _image_prediction(
    logits: Tensor,
    boxes: Tensor,
    pred_rel: Tensor,
    connectivity: Tensor,
    size: Tensor,
    options: PostprocessOptions,
) -> dict:
    probabilities = logits.softmax(-1) if options.object_score == "softmax" else logits.sigmoid()
    scores, labels = probabilities.max(-1)
    height, width = size.tolist()
    pixel_boxes = scale_boxes(cxcywh_to_xyxy(boxes), width, height)
    rel = pred_rel.clamp(0.0, 1.0) * connectivity.clamp(0.0, 1.0)[..., None]  # [N,N,R]
    rel_pairs, rel_scores = select_pairs(rel, scores, options.top_k, options.keep_diagonal)
    if options.detections == "sigmoid_top":
        detections = top_detections(logits, pixel_boxes, options.detection_top_k)
    else:
        detections = {"boxes": pixel_boxes, "labels": labels, "scores": scores}
    prediction = {
        "boxes": pixel_boxes,
        "labels": labels,
        "scores": scores,
        "rel_pairs": rel_pairs,
        "rel_scores": rel_scores,
    }
    prediction["detections"] = detections
    return _to_cpu(prediction)


def select_pairs(rel: Tensor, scores: Tensor, top_k: int, keep_diagonal: bool) -> tuple[Tensor, Tensor]:
    """The best `top_k` pairs by max_p rel * s_i * s_j, best first, and their predicate scores.

    rel [N,N,R], scores [N] -> rel_pairs [P,2] (subject, object) int64, rel_scores [P,R]; P = top_k unless
    fewer pairs exist. Self-pairs take part only with `keep_diagonal`.
    """
    num_queries, num_predicates = rel.shape[0], rel.shape[-1]
    prior = scores[:, None] * scores[None, :]  # [N,N], the official outer(scores, scores)
    pair_scores = (rel.max(-1).values * prior).flatten()  # [N*N]
    num_pairs = num_queries * num_queries
    if not keep_diagonal:
        pair_scores[:: num_queries + 1] = -1.0  # below every real score (>= 0): ranked last, then cut
        num_pairs -= num_queries
    order = torch.sort(pair_scores, descending=True, stable=True).indices[: min(top_k, num_pairs)]
    rel_pairs = torch.stack((order // num_queries, order % num_queries), dim=1)
    return rel_pairs, rel.reshape(num_queries * num_queries, num_predicates)[order]


def top_detections(logits: Tensor, boxes: Tensor, top_k: int) -> dict:
    """Best `top_k` (query, class) of sigmoid(logits [N,C]) with the query's box [N,4].

    As the official `post_process` (module docstring)."""
    probabilities = logits.sigmoid().flatten()
    values, indices = probabilities.topk(min(top_k, probabilities.numel()))
    num_classes = logits.shape[-1]
    return {"boxes": boxes[indices // num_classes], "labels": indices % num_classes, "scores": values}


def _to_cpu(prediction: dict) -> dict:
    return {
        key: _to_cpu(value) if isinstance(value, dict) else value.cpu() for key, value in prediction.items()
    }


def to_numpy(prediction: dict) -> dict:
    """A prediction dict (possibly nested) with every tensor as a numpy array (what the evaluators keep)."""
    return {k: to_numpy(v) if isinstance(v, dict) else v.cpu().numpy() for k, v in prediction.items()}
