"""The EGTR objective can be optimized: a tiny real model overfits a fixed batch of two synthetic images."""

from __future__ import annotations

import torch

from egtr.config import EGTRConfig
from egtr.models.egtr import EGTR
from egtr.training import EGTRCriterion

IMAGE_SIZE = 64
TERMS = ("loss", "loss_ce", "loss_bbox", "loss_giou", "loss_rel", "loss_connectivity")


def _tiny_config() -> EGTRConfig:
    # ResNet-18 frozen (no convolution backward: fast on CPU); the transformer and both heads are trained
    return EGTRConfig.small(
        num_labels=5,
        num_rel_labels=3,
        d_model=64,
        encoder_layers=1,
        decoder_layers=2,
        encoder_ffn_dim=128,
        decoder_ffn_dim=128,
        num_feature_levels=2,
        num_queries=10,
        dropout=0.0,
        use_freq_bias=False,
        backbone_frozen_stages=4,
        freeze_downsample_batchnorm=True,
    )


def _draw(boxes: list[list[float]], colours: list[list[float]]) -> torch.Tensor:
    """[3,H,W] image with a flat-coloured rectangle per normalized (cx, cy, w, h) box, roughly normalized."""
    image = torch.zeros(3, IMAGE_SIZE, IMAGE_SIZE)
    for (cx, cy, w, h), colour in zip(boxes, colours):
        x0, x1 = int((cx - w / 2) * IMAGE_SIZE), int((cx + w / 2) * IMAGE_SIZE)
        y0, y1 = int((cy - h / 2) * IMAGE_SIZE), int((cy + h / 2) * IMAGE_SIZE)
        image[:, y0:y1, x0:x1] = torch.tensor(colour)[:, None, None]
    return (image - 0.5) / 0.25


def _fixed_batch() -> tuple[torch.Tensor, list[dict[str, torch.Tensor]]]:
    first = [[0.25, 0.3, 0.3, 0.4], [0.7, 0.7, 0.4, 0.3], [0.7, 0.2, 0.2, 0.2]]
    second = [[0.5, 0.5, 0.5, 0.5], [0.2, 0.8, 0.2, 0.2]]
    pixels = torch.stack(
        (_draw(first, [[1, 0, 0], [0, 1, 0], [0, 0, 1]]), _draw(second, [[1, 1, 0], [0, 1, 1]]))
    )
    targets = [
        {
            "labels": torch.tensor([0, 1, 2]),
            "boxes": torch.tensor(first),
            "relations": torch.tensor([[0, 1, 0], [2, 1, 1]]),
        },
        {
            "labels": torch.tensor([3, 4]),
            "boxes": torch.tensor(second),
            "relations": torch.tensor([[1, 0, 2]]),
        },
    ]
    return pixels, targets


def test_total_detection_and_relation_terms_decrease_on_a_fixed_batch() -> None:
    torch.manual_seed(0)
    config = _tiny_config()
    model = EGTR(config).train()
    criterion = EGTRCriterion(config).train()
    pixels, targets = _fixed_batch()
    optimizer = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=1e-3, weight_decay=1e-4
    )
    history = []
    for _ in range(200):
        losses = criterion(model(pixels), targets)
        optimizer.zero_grad()
        losses["loss"].backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        history.append({name: losses[name].item() for name in TERMS})
    first = history[0]
    last = {name: sum(step[name] for step in history[-10:]) / 10 for name in TERMS}
    for name in TERMS:
        assert last[name] < 0.1 * first[name], (name, first[name], last[name])
