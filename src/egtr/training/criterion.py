"""The EGTR training objective: detection + relation (adaptive smoothing, sampling) + connectivity.

The official objective of architecture.md §5.5:

    loss = ce_w * loss_ce + bbox_w * loss_bbox + giou_w * loss_giou
         + rel_w * loss_rel + conn_w * loss_connectivity
         (+ the detection terms of decoder layers 0..L-2 with the same weights when config.auxiliary_loss)

`.train()` mode samples the relation entries as officially; `.eval()` mode uses the dense loss (the official
validation loss). Differences from the official code: smoothing 0 means plain labels (it crashes officially);
a batch without any relation gives loss_rel = 0 instead of NaN. The box count is each process's own, as
officially, unless config.average_num_boxes_across_processes (DETR's global average).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from egtr.config import EGTRConfig
from egtr.models.outputs import EGTROutput
from egtr.training.denoising import add_denoising
from egtr.training.detection import auxiliary_weights, count_boxes, detection_terms
from egtr.training.matcher import HungarianMatcher
from egtr.training.relation import (
    RelationTargets,
    build_relation_targets,
    connectivity_loss,
    dense_relation_loss,
    positive_pair_uncertainty,
    sampled_relation_loss,
)
from egtr.training.targets import prepare_targets


class EGTRCriterion(nn.Module):
    """Plain nn.Module: forward(outputs: EGTROutput, targets: list[dict]) -> dict of losses and logged extras.

    Returned keys: `loss` (weighted total, with gradient); the unweighted terms `loss_ce`, `loss_bbox`,
    `loss_giou`, `loss_rel`, `loss_connectivity` (0 and left out of the total when use_connectivity is off);
    detached extras `cardinality_error`, `uncertainty` (mean u_i * u_j over the positive (pair, predicate)
    entries, 0 without any), `rel_gate_0..S-1` (mean gate of each relation source); with auxiliary losses
    `loss_ce_l`, `loss_bbox_l`, `loss_giou_l`, `cardinality_error_l` for decoder layers l = 0..L-2; when the
    outputs carry denoising queries (training with query denoising), `loss_dn_ce`, `loss_dn_bbox`,
    `loss_dn_giou` (and `_l` per layer with auxiliary losses; egtr.training.denoising).
    """

    def __init__(self, config: EGTRConfig) -> None:
        super().__init__()
        self.config = config
        self.matcher = HungarianMatcher.from_config(config, smoothing=config.smoothing)
        self.weights = {
            "loss_ce": config.ce_loss_coefficient,
            "loss_bbox": config.bbox_loss_coefficient,
            "loss_giou": config.giou_loss_coefficient,
            "loss_rel": config.rel_loss_coefficient,
        }
        if config.use_connectivity:
            self.weights["loss_connectivity"] = config.connectivity_loss_coefficient
        for name, ratio in (
            ("rel_sample_negatives", config.rel_sample_negatives),
            ("rel_sample_nonmatching", config.rel_sample_nonmatching),
        ):
            if ratio is not None and (not isinstance(ratio, int) or ratio < 0):
                raise ValueError(f"config.{name} must be None or a non-negative integer, got {ratio!r}")

    def relation_loss(self, rel_logits: Tensor, targets: RelationTargets) -> Tensor:
        """Sampled loss in training mode, dense loss in eval mode."""
        if not self.training:
            return dense_relation_loss(rel_logits, targets)
        config = self.config
        return sampled_relation_loss(
            rel_logits,
            targets,
            negatives_ratio=config.rel_sample_negatives,
            nonmatching_ratio=config.rel_sample_nonmatching,
            negatives_largest=config.rel_sample_negatives_largest,
            nonmatching_largest=config.rel_sample_nonmatching_largest,
        )

    def forward(self, outputs: EGTROutput, targets: list[dict[str, Any]]) -> dict[str, Tensor]:
        batch_size, num_queries, num_classes = outputs.logits.shape
        num_predicates = outputs.rel_logits.shape[-1]
        if len(targets) != batch_size:
            raise ValueError(f"got {len(targets)} target dicts for a batch of {batch_size} images")
        if self.config.use_connectivity and outputs.connectivity_logits is None:
            raise ValueError("config.use_connectivity is on but outputs.connectivity_logits is None")
        device = outputs.logits.device
        images = prepare_targets(targets, num_classes, num_predicates, device)
        num_boxes = count_boxes(images, device, self.config.average_num_boxes_across_processes)
        auxiliary = self.config.auxiliary_loss
        terms, matches = detection_terms(
            self.matcher,
            outputs.logits,
            outputs.pred_boxes,
            outputs.decoder_logits if auxiliary else None,
            outputs.decoder_boxes if auxiliary else None,
            images,
            num_boxes,
            self.config.focal_alpha,
            self.config.focal_gamma,
        )
        relation_targets = build_relation_targets(
            matches, images, num_queries, num_predicates, self.config.smoothing
        )
        terms["loss_rel"] = self.relation_loss(outputs.rel_logits, relation_targets)
        if self.config.use_connectivity:
            terms["loss_connectivity"] = connectivity_loss(outputs.connectivity_logits, relation_targets)
        else:
            terms["loss_connectivity"] = torch.zeros((), device=device)
        terms["uncertainty"] = positive_pair_uncertainty(relation_targets)
        gate_means = outputs.relation_gates.detach().float().mean(dim=(0, 1, 2))
        terms.update({f"rel_gate_{source}": mean for source, mean in enumerate(gate_means)})
        weights = dict(self.weights)
        if auxiliary:
            weights.update(auxiliary_weights(self.weights, outputs.decoder_logits.shape[1]))
        add_denoising(
            terms,
            weights,
            outputs.denoising,
            images,
            num_boxes,
            self.config.focal_alpha,
            self.config.focal_gamma,
            auxiliary,
        )
        terms["loss"] = sum(weight * terms[name] for name, weight in weights.items())
        return terms
