"""Detection terms of the denoising queries (DN-DETR; the queries: egtr.models.denoising).

Slot m of every group denoises object m of its image, so no matching is needed: every real slot is
trained towards its object's class (sigmoid focal loss against the one-hot label; padding slots take no
part) and box (L1 and GIoU on (cx, cy, w, h)). Each term is a sum over the real slots of the batch divided
by num_boxes x groups, i.e. the matching terms' normalization averaged over the groups:

    loss_dn_ce, loss_dn_bbox, loss_dn_giou      (last decoder layer)
    loss_dn_ce_l, loss_dn_bbox_l, loss_dn_giou_l (layers l = 0..L-2, with auxiliary losses)

weighted like the matching terms (ce, bbox and giou coefficients).
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import functional as F

from egtr.boxes import cxcywh_to_xyxy, generalized_box_iou
from egtr.models.outputs import DenoisingOutput
from egtr.training.detection import sigmoid_focal_loss
from egtr.training.targets import ImageTargets


def slot_targets(targets: list[ImageTargets], slots: int) -> tuple[Tensor, Tensor]:
    """Each image's objects in slot order: labels [B, M] long and boxes [B, M, 4] (zeros past its count)."""
    device = targets[0].labels.device
    labels = torch.zeros(len(targets), slots, dtype=torch.long, device=device)
    boxes = torch.zeros(len(targets), slots, 4, device=device)
    for image, target in enumerate(targets):
        labels[image, : len(target.labels)] = target.labels
        boxes[image, : len(target.labels)] = target.boxes
    return labels, boxes


def denoising_losses(
    logits: Tensor,
    boxes: Tensor,
    output: DenoisingOutput,
    targets: list[ImageTargets],
    num_boxes: float,
    focal_alpha: float,
    focal_gamma: float,
) -> dict[str, Tensor]:
    """loss_dn_ce, loss_dn_bbox, loss_dn_giou of one layer's denoising predictions logits [B,D,C] and
    boxes [B,D,4] against the objects their slots copy."""
    queries = output.queries
    labels, object_boxes = slot_targets(targets, queries.slots)
    images, positions = queries.valid.nonzero(as_tuple=True)  # [K] each: every real slot
    objects = positions % queries.slots
    normalizer = num_boxes * queries.groups
    logits = logits.float()
    one_hot = torch.zeros_like(logits)
    one_hot[images, positions, labels[images, objects]] = 1.0
    focal = sigmoid_focal_loss(logits, one_hot, focal_alpha, focal_gamma)
    loss_ce = (focal * queries.valid[..., None]).sum() / normalizer
    predicted, truth = boxes.float()[images, positions], object_boxes[images, objects]
    loss_bbox = F.l1_loss(predicted, truth, reduction="sum") / normalizer
    giou = generalized_box_iou(cxcywh_to_xyxy(predicted), cxcywh_to_xyxy(truth)).diagonal()
    loss_giou = (1 - giou).sum() / normalizer
    return {"loss_dn_ce": loss_ce, "loss_dn_bbox": loss_bbox, "loss_dn_giou": loss_giou}


def denoising_terms(
    output: DenoisingOutput,
    targets: list[ImageTargets],
    num_boxes: float,
    focal_alpha: float,
    focal_gamma: float,
    auxiliary: bool,
) -> dict[str, Tensor]:
    """The denoising terms of the last decoder layer, and of layers 0..L-2 (suffix `_l`) when auxiliary."""
    layers = output.decoder_logits.shape[1]
    terms = {}
    for layer in range(layers) if auxiliary else [layers - 1]:
        layer_terms = denoising_losses(
            output.decoder_logits[:, layer],
            output.decoder_boxes[:, layer],
            output,
            targets,
            num_boxes,
            focal_alpha,
            focal_gamma,
        )
        suffix = "" if layer == layers - 1 else f"_{layer}"
        terms.update({f"{name}{suffix}": value for name, value in layer_terms.items()})
    return terms


def denoising_weights(weights: dict[str, float], terms: dict[str, Tensor]) -> dict[str, float]:
    """The weight of every denoising term of `terms` (`loss_dn_ce[_l]`, ...): that of the matching term it
    mirrors (`loss_ce`, ...)."""
    return {name: weights["loss_" + name.removeprefix("loss_dn_").split("_")[0]] for name in terms}


def add_denoising(
    terms: dict[str, Tensor],
    weights: dict[str, float],
    output: DenoisingOutput | None,
    targets: list[ImageTargets],
    num_boxes: float,
    focal_alpha: float,
    focal_gamma: float,
    auxiliary: bool,
) -> None:
    """With query denoising (`output` not None): its terms into `terms`, each weighted in `weights` as the
    matching term it mirrors; both criteria call it before summing the loss."""
    if output is None:
        return
    denoising = denoising_terms(output, targets, num_boxes, focal_alpha, focal_gamma, auxiliary)
    terms.update(denoising)
    weights.update(denoising_weights(weights, denoising))
