"""Detection terms of the objectives: sigmoid focal class loss, L1 and GIoU box losses (architecture.md §5.5).

All three are sums over the batch divided by `num_boxes`, the number of ground-truth boxes (`count_boxes`).
`detection_terms` applies them to the final predictions and, optionally, to every intermediate decoder layer
(each layer matched on its own, as DETR does), naming those `loss_ce_0`, `loss_bbox_0`, ... by layer.
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor
from torch.nn import functional as F

from egtr.boxes import cxcywh_to_xyxy, generalized_box_iou
from egtr.training.matcher import HungarianMatcher, Match
from egtr.training.targets import ImageTargets

DETECTION_TERMS = ("loss_ce", "loss_bbox", "loss_giou")


def sigmoid_focal_loss(logits: Tensor, targets: Tensor, alpha: float, gamma: float) -> Tensor:
    """Elementwise focal loss (RetinaNet) of logits and {0,1} targets of the same shape."""
    probability = logits.sigmoid()
    cross_entropy = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    probability_of_truth = probability * targets + (1 - probability) * (1 - targets)
    alpha_weight = alpha * targets + (1 - alpha) * (1 - targets)
    return alpha_weight * (cross_entropy * (1 - probability_of_truth) ** gamma)


def count_boxes(targets: list[ImageTargets], device: torch.device, across_processes: bool) -> float:
    """Ground-truth boxes of the batch, clamped to >= 1.

    With `across_processes` and torch.distributed initialized, the count is averaged over the processes
    (DETR); otherwise it is the local count (the official EGTR behaviour).
    """
    count = torch.tensor(float(sum(len(target.labels) for target in targets)), device=device)
    if across_processes and dist.is_available() and dist.is_initialized():
        dist.all_reduce(count)
        count = count / dist.get_world_size()
    return max(count.item(), 1.0)


def _matched_positions(matches: list[Match]) -> tuple[Tensor, Tensor]:
    """(image index [K], query index [K]) of every match of the batch."""
    images = torch.cat([torch.full_like(match.query_index, image) for image, match in enumerate(matches)])
    queries = torch.cat([match.query_index for match in matches])
    return images, queries


def detection_losses(
    logits: Tensor,
    pred_boxes: Tensor,
    targets: list[ImageTargets],
    matches: list[Match],
    num_boxes: float,
    focal_alpha: float,
    focal_gamma: float,
) -> dict[str, Tensor]:
    """loss_ce, loss_bbox, loss_giou of logits [B,N,C] and pred_boxes [B,N,4] under the given matches."""
    images, queries = _matched_positions(matches)
    matched_labels = torch.cat([target.labels[match.target_index] for target, match in zip(targets, matches)])
    matched_boxes = torch.cat([target.boxes[match.target_index] for target, match in zip(targets, matches)])
    logits = logits.float()
    one_hot = torch.zeros_like(logits)
    one_hot[images, queries, matched_labels] = 1.0
    loss_ce = sigmoid_focal_loss(logits, one_hot, focal_alpha, focal_gamma).sum() / num_boxes
    predicted = pred_boxes.float()[images, queries]
    loss_bbox = F.l1_loss(predicted, matched_boxes, reduction="none").sum() / num_boxes
    giou = generalized_box_iou(cxcywh_to_xyxy(predicted), cxcywh_to_xyxy(matched_boxes)).diagonal()
    loss_giou = (1 - giou).sum() / num_boxes
    return {"loss_ce": loss_ce, "loss_bbox": loss_bbox, "loss_giou": loss_giou}


@torch.no_grad()
def cardinality_error(logits: Tensor, targets: list[ImageTargets]) -> Tensor:
    """Mean |#queries whose argmax is not the last class - #targets| (official DETR leftover; log only)."""
    predicted_count = (logits.argmax(-1) != logits.shape[-1] - 1).sum(1).float()
    target_count = torch.tensor([float(len(target.labels)) for target in targets], device=logits.device)
    return F.l1_loss(predicted_count, target_count)


def detection_terms(
    matcher: HungarianMatcher,
    logits: Tensor,
    pred_boxes: Tensor,
    decoder_logits: Tensor | None,
    decoder_boxes: Tensor | None,
    targets: list[ImageTargets],
    num_boxes: float,
    focal_alpha: float,
    focal_gamma: float,
) -> tuple[dict[str, Tensor], list[Match]]:
    """Detection terms of the final layer (+ those of decoder layers 0..L-2 when decoder_* are given).

    logits [B,N,C], pred_boxes [B,N,4], decoder_logits [B,L,N,C], decoder_boxes [B,L,N,4].
    Returns the terms (including `cardinality_error[_l]`) and the final layer's matches.
    """
    labels = [target.labels for target in targets]
    boxes = [target.boxes for target in targets]
    matches = matcher(logits, pred_boxes, labels, boxes)
    terms = detection_losses(logits, pred_boxes, targets, matches, num_boxes, focal_alpha, focal_gamma)
    terms["cardinality_error"] = cardinality_error(logits, targets)
    if decoder_logits is None or decoder_boxes is None:
        return terms, matches
    for layer in range(decoder_logits.shape[1] - 1):
        layer_logits, layer_boxes = decoder_logits[:, layer], decoder_boxes[:, layer]
        layer_matches = matcher(layer_logits, layer_boxes, labels, boxes)
        layer_terms = detection_losses(
            layer_logits, layer_boxes, targets, layer_matches, num_boxes, focal_alpha, focal_gamma
        )
        layer_terms["cardinality_error"] = cardinality_error(layer_logits, targets)
        terms.update({f"{name}_{layer}": value for name, value in layer_terms.items()})
    return terms, matches


def auxiliary_weights(weights: dict[str, float], num_decoder_layers: int) -> dict[str, float]:
    """The weights of the per-layer terms: the final layer's weight for every layer 0..L-2."""
    return {
        f"{name}_{layer}": weights[name]
        for layer in range(num_decoder_layers - 1)
        for name in DETECTION_TERMS
    }
