"""Query denoising (DN-DETR, Li et al. 2022) for the Deformable DETR decoder: an optional training aid.

In training, `groups` noised copies of every ground-truth object join the decoder as extra queries. A
denoising query starts from its noised box (reference point = the box centre, position embedding = an MLP
of the box's sine embedding) and its noised label (a learned class embedding as content), and is trained to
return the true box and class (egtr.training.denoising), a task without the matching's ambiguity.

Query layout: the N matching queries first, then the groups, each of M slots (M = most objects of an image
in the batch): slot m of every group copies object m of its image; slots m >= the image's object count are
padding. Self-attention mask (True = may attend): a matching query sees the matching queries only; a
denoising query sees the matching queries and the real slots of its own group. So the matching queries —
whose self-attention queries and keys EGTR reads — compute exactly what they compute without denoising
(each query's projections, cross-attention and FFN are per query; its self-attention sees the same keys),
and at inference there are no denoising queries. Off unless `config.denoising_groups` > 0.

Noise, as in DN-DETR: each label is replaced by a uniformly drawn class with probability `label_noise`;
a box (cx, cy, w, h) moves its centre by up to `box_noise` x half its size along each axis and scales its
width and height by a factor in [1 - box_noise, 1 + box_noise], uniformly; the result is clipped to [0, 1].
Random draws come from torch's global generator (seeded by Lightning).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from egtr.models.mlp import MLP
from egtr.models.position import sine_features

MIN_SIZE = 1e-3  # a noised width or height stays at least this (normalized) size


@dataclass
class DenoisingQueries:
    """Noised ground-truth objects of a batch as decoder queries: D = groups x slots per image."""

    labels: Tensor  # [B, D] long, noised class labels (0 in padding slots)
    boxes: Tensor  # [B, D, 4] noised (cx, cy, w, h) in [0, 1] (a unit-square box in padding slots)
    valid: Tensor  # [B, D] bool, the slot copies a real object
    groups: int

    @property
    def slots(self) -> int:
        """Slots per group, M (object m of its image sits in slot m of every group)."""
        return self.labels.shape[1] // self.groups

    def attention_mask(self, num_queries: int) -> Tensor:
        """[B, 1, N + D, N + D] bool self-attention mask for N matching queries (True = may attend)."""
        batch, count = self.valid.shape
        device = self.valid.device
        total = num_queries + count
        group = torch.arange(count, device=device) // self.slots
        mask = torch.zeros(batch, total, total, dtype=torch.bool, device=device)
        mask[:, :, :num_queries] = True  # everyone sees the matching queries
        same_group = group[:, None] == group[None, :]  # [D, D]
        mask[:, num_queries:, num_queries:] = same_group[None] & self.valid[:, None, :]
        return mask[:, None]


def make_denoising_queries(
    labels: list[Tensor],
    boxes: list[Tensor],
    num_classes: int,
    groups: int,
    box_noise: float,
    label_noise: float,
) -> DenoisingQueries | None:
    """Noised copies of each image's objects (labels[b] [M_b] long, boxes[b] [M_b, 4] (cx, cy, w, h) in
    [0, 1]), `groups` times; None when the batch has no object (nothing to denoise)."""
    slots = max((len(image_labels) for image_labels in labels), default=0)
    if groups < 1 or slots == 0:
        return None
    batch, device = len(labels), boxes[0].device
    clean_labels = torch.zeros(batch, slots, dtype=torch.long, device=device)
    clean_boxes = torch.tensor([0.5, 0.5, 1.0, 1.0], device=device).repeat(batch, slots, 1)
    valid = torch.zeros(batch, slots, dtype=torch.bool, device=device)
    for image, (image_labels, image_boxes) in enumerate(zip(labels, boxes)):
        count = len(image_labels)
        clean_labels[image, :count] = image_labels
        clean_boxes[image, :count] = image_boxes.float()
        valid[image, :count] = True
    clean_labels = clean_labels.repeat(1, groups)  # [B, G*M], group-major
    clean_boxes = clean_boxes.repeat(1, groups, 1)
    valid = valid.repeat(1, groups)

    flipped = torch.rand(clean_labels.shape, device=device) < label_noise
    random_labels = torch.randint(0, num_classes, clean_labels.shape, device=device)
    noised_labels = torch.where(flipped & valid, random_labels, clean_labels)
    centre, size = clean_boxes[..., :2], clean_boxes[..., 2:]
    uniform = 2 * torch.rand(clean_boxes.shape, device=device) - 1  # [-1, 1)
    centre = (centre + uniform[..., :2] * box_noise * size / 2).clamp(0.0, 1.0)
    size = (size * (1 + uniform[..., 2:] * box_noise)).clamp(MIN_SIZE, 1.0)
    noised_boxes = torch.where(valid[..., None], torch.cat([centre, size], -1), clean_boxes)
    return DenoisingQueries(noised_labels, noised_boxes, valid, groups)


def box_sine_embedding(boxes: Tensor, features_per_coordinate: int, temperature: float = 10000.0) -> Tensor:
    """[..., 4] boxes in [0, 1] -> [..., 4 * features_per_coordinate]: the sine features of each coordinate
    x 2π (the functions of the feature maps' position embedding)."""
    angles = boxes.float() * (2 * math.pi)
    per_coordinate = [sine_features(angles[..., k], features_per_coordinate, temperature) for k in range(4)]
    return torch.cat(per_coordinate, -1)


class DenoisingEmbedding(nn.Module):
    """Content and position of the denoising queries: a class embedding, and an MLP of the box's sine
    embedding (d/2 features per coordinate -> d -> d)."""

    def __init__(self, num_labels: int, d_model: int) -> None:
        super().__init__()
        if d_model % 4:
            raise ValueError(f"query denoising needs d_model divisible by 4, got {d_model}")
        self.features_per_coordinate = d_model // 2
        self.label_embedding = nn.Embedding(num_labels, d_model)
        self.box_embedding = MLP(4 * self.features_per_coordinate, d_model, d_model, 2)

    def forward(self, queries: DenoisingQueries) -> tuple[Tensor, Tensor, Tensor]:
        """-> content [B, D, d], position embedding [B, D, d], reference points [B, D, 2] (box centres)."""
        content = self.label_embedding(queries.labels)
        position = self.box_embedding(box_sine_embedding(queries.boxes, self.features_per_coordinate))
        return content, position.to(content.dtype), queries.boxes[..., :2]
