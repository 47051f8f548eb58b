"""The detector-only objective of the detector pre-training phase (architecture.md §5.5, §5.7).

As the official `DeformableDetrLoss` (in the official `model/deformable_detr.py`, architecture.md §10):

    loss = ce_w * loss_ce + bbox_w * loss_bbox + giou_w * loss_giou  (+ the same for decoder layers 0..L-2)

Hungarian matching without smoothing; auxiliary losses on by default, as in the official pre-training.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from egtr.config import EGTRConfig
from egtr.models.outputs import DetectorOutput, EGTROutput
from egtr.training.denoising import add_denoising
from egtr.training.detection import auxiliary_weights, count_boxes, detection_terms
from egtr.training.matcher import HungarianMatcher
from egtr.training.targets import prepare_targets


class DetectorCriterion(nn.Module):
    """Plain nn.Module: forward(outputs, targets) on a DetectorOutput or an EGTROutput.

    Uses only `logits`, `pred_boxes`, `decoder_logits` and `decoder_boxes`. Returns `loss` (weighted total),
    `loss_ce`, `loss_bbox`, `loss_giou`, `cardinality_error` and, with auxiliary losses, the same terms
    suffixed `_l` for decoder layers l = 0..L-2, and the denoising terms `loss_dn_*` when the outputs carry
    denoising queries (egtr.training.denoising). Target dicts need `labels` and `boxes` only.
    """

    def __init__(self, config: EGTRConfig, auxiliary_loss: bool = True) -> None:
        super().__init__()
        self.config = config
        self.auxiliary_loss = auxiliary_loss
        self.matcher = HungarianMatcher.from_config(config)
        self.weights = {
            "loss_ce": config.ce_loss_coefficient,
            "loss_bbox": config.bbox_loss_coefficient,
            "loss_giou": config.giou_loss_coefficient,
        }

    def forward(
        self, outputs: DetectorOutput | EGTROutput, targets: list[dict[str, Any]]
    ) -> dict[str, Tensor]:
        batch_size, _, num_classes = outputs.logits.shape
        if len(targets) != batch_size:
            raise ValueError(f"got {len(targets)} target dicts for a batch of {batch_size} images")
        device = outputs.logits.device
        images = prepare_targets(targets, num_classes, None, device)
        num_boxes = count_boxes(images, device, self.config.average_num_boxes_across_processes)
        terms, _ = detection_terms(
            self.matcher,
            outputs.logits,
            outputs.pred_boxes,
            outputs.decoder_logits if self.auxiliary_loss else None,
            outputs.decoder_boxes if self.auxiliary_loss else None,
            images,
            num_boxes,
            self.config.focal_alpha,
            self.config.focal_gamma,
        )
        weights = dict(self.weights)
        if self.auxiliary_loss:
            weights.update(auxiliary_weights(self.weights, outputs.decoder_logits.shape[1]))
        add_denoising(
            terms,
            weights,
            outputs.denoising,
            images,
            num_boxes,
            self.config.focal_alpha,
            self.config.focal_gamma,
            self.auxiliary_loss,
        )
        terms["loss"] = sum(weight * terms[name] for name, weight in weights.items())
        return terms
