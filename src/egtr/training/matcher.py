"""Hungarian matching of object queries to ground-truth boxes, with the adaptive-smoothing shift.

The official matching of architecture.md §5.5. Cost of assigning query q to target t (all terms as
officially, in float32):
    p = sigmoid(logits[q, label_t])
    class = alpha (1-p)^gamma (-log(p + 1e-8)) - (1-alpha) p^gamma (-log(1-p + 1e-8))
    cost  = bbox_cost * L1(box_q, box_t) + class_cost * class - giou_cost * GIoU(box_q, box_t)
With smoothing s > 0 the cost is shifted by a constant so that a perfect match costs logit(s):
    shifted = cost - perfect_match_cost + logit(s)
    perfect_match_cost = class_cost (1-alpha) log(1e-8) - giou_cost
so the uncertainty u = sigmoid(shifted) is s for a perfect match. The shift does not change the assignment.
With smoothing 0 the cost is returned unshifted (as officially); the objectives then use plain labels.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn

from egtr.boxes import cxcywh_to_xyxy, generalized_box_iou
from egtr.config import EGTRConfig

PROBABILITY_EPSILON = 1e-8  # inside the logs of the focal class cost, as officially


class Match(NamedTuple):
    """Matches of one image, ordered by ascending query index."""

    query_index: Tensor  # [K] long
    target_index: Tensor  # [K] long
    cost: Tensor  # [K] float32 matching cost of each pair (shifted when smoothing > 0)


class HungarianMatcher(nn.Module):
    """One-to-one assignment of queries to targets minimizing the focal-class + L1 + GIoU cost, per image."""

    def __init__(
        self,
        class_cost: float = 2.0,
        bbox_cost: float = 5.0,
        giou_cost: float = 2.0,
        focal_alpha: float = 0.25,
        focal_gamma: float = 2.0,
        smoothing: float = 0.0,
    ) -> None:
        super().__init__()
        if class_cost == 0 and bbox_cost == 0 and giou_cost == 0:
            raise ValueError("HungarianMatcher: class_cost, bbox_cost and giou_cost cannot all be 0")
        if not 0 <= smoothing < 1:
            raise ValueError(f"HungarianMatcher: smoothing must be in [0, 1), got {smoothing}")
        self.class_cost = class_cost
        self.bbox_cost = bbox_cost
        self.giou_cost = giou_cost
        self.focal_alpha = focal_alpha
        self.focal_gamma = focal_gamma
        self.smoothing = smoothing

    @classmethod
    def from_config(cls, config: EGTRConfig, smoothing: float = 0.0) -> HungarianMatcher:
        """The matcher with `config`'s matching costs and focal parameters, and `smoothing` (α)."""
        return cls(
            class_cost=config.matching_class_cost,
            bbox_cost=config.bbox_cost,
            giou_cost=config.giou_cost,
            focal_alpha=config.focal_alpha,
            focal_gamma=config.focal_gamma,
            smoothing=smoothing,
        )

    def perfect_match_cost(self) -> Tensor:
        """Cost of p = 1 on the right class and the exact box (float32 scalar, ≈ -29.63 officially)."""
        log_epsilon = torch.log(torch.tensor(PROBABILITY_EPSILON))
        return self.class_cost * (1 - self.focal_alpha) * log_epsilon - self.giou_cost

    def shift(self, cost: Tensor) -> Tensor:
        """Shift raw costs so that a perfect match costs logit(smoothing); identity when smoothing is 0."""
        if self.smoothing == 0:
            return cost
        logit_smoothing = -torch.log(torch.tensor(1.0 / self.smoothing - 1.0))
        return cost - self.perfect_match_cost().to(cost.device) + logit_smoothing.to(cost.device)

    def cost_matrix(self, logits: Tensor, pred_boxes: Tensor, labels: Tensor, boxes: Tensor) -> Tensor:
        """Raw cost of each (query, target).

        logits [Q,C], pred_boxes [Q,4] (cx,cy,w,h), labels [M], boxes [M,4] -> [Q,M].
        """
        probability = logits.float().sigmoid()[:, labels]
        alpha, gamma = self.focal_alpha, self.focal_gamma
        positive = alpha * (1 - probability) ** gamma * (-(probability + PROBABILITY_EPSILON).log())
        negative = (1 - alpha) * probability**gamma * (-(1 - probability + PROBABILITY_EPSILON).log())
        l1 = torch.cdist(pred_boxes.float(), boxes.float(), p=1)
        giou = generalized_box_iou(cxcywh_to_xyxy(pred_boxes.float()), cxcywh_to_xyxy(boxes.float()))
        return self.bbox_cost * l1 + self.class_cost * (positive - negative) - self.giou_cost * giou

    @torch.no_grad()
    def forward(
        self, logits: Tensor, pred_boxes: Tensor, labels: list[Tensor], boxes: list[Tensor]
    ) -> list[Match]:
        """Match each image's queries to its targets.

        logits [B,N,C], pred_boxes [B,N,4] (cx,cy,w,h); labels[b] [M_b], boxes[b] [M_b,4].
        Returns one Match per image with M_b pairs (an image may not have more targets than queries).
        """
        batch_size, num_queries = logits.shape[:2]
        sizes = [len(image_labels) for image_labels in labels]
        for image, size in enumerate(sizes):
            if size > num_queries:
                raise ValueError(
                    f"targets[{image}] has {size} boxes but the model has only {num_queries} object queries"
                )
        all_labels, all_boxes = torch.cat(labels), torch.cat(boxes)
        if all_labels.numel() == 0:
            costs = logits.new_zeros(batch_size, num_queries, 0, dtype=torch.float32)
        else:
            flat_cost = self.cost_matrix(
                logits.flatten(0, 1), pred_boxes.flatten(0, 1), all_labels, all_boxes
            )
            costs = self.shift(flat_cost).view(batch_size, num_queries, -1)
        costs_cpu = costs.cpu()
        matches = []
        for image, (image_cost, image_cost_cpu) in enumerate(
            zip(costs.split(sizes, -1), costs_cpu.split(sizes, -1))
        ):
            if not torch.isfinite(image_cost_cpu[image]).all():
                raise FloatingPointError(
                    f"image {image}: matching cost not finite (NaN or inf in the predicted logits or boxes)"
                )
            # scipy is imported when used: `egtr --help` builds every parser
            from scipy.optimize import linear_sum_assignment

            query_index, target_index = linear_sum_assignment(image_cost_cpu[image].double().numpy())
            query_index = torch.as_tensor(query_index, dtype=torch.long, device=logits.device)
            target_index = torch.as_tensor(target_index, dtype=torch.long, device=logits.device)
            matches.append(Match(query_index, target_index, image_cost[image, query_index, target_index]))
        return matches
