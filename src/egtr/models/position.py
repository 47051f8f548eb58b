"""Sine position embedding of a padded feature map (spec §1.2)."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


class SinePositionEmbedding(nn.Module):
    """Normalized 2-d sine/cosine embedding, `num_feats` channels per axis, output cat(pos_y, pos_x).

    Coordinates are cumulative sums of the mask, normalized as (c - 0.5) / (c_last + 1e-6) * 2π.
    """

    def __init__(
        self, num_feats: int = 128, temperature: float = 10000.0, scale: float = 2 * math.pi
    ) -> None:
        super().__init__()
        self.num_feats = num_feats
        self.temperature = temperature
        self.scale = scale

    def forward(self, mask: Tensor) -> Tensor:
        """mask [B,H,W] bool (True = real pixel) -> [B, 2*num_feats, H, W] float32."""
        y_embed = mask.cumsum(1, dtype=torch.float32)
        x_embed = mask.cumsum(2, dtype=torch.float32)
        eps = 1e-6
        y_embed = (y_embed - 0.5) / (y_embed[:, -1:, :] + eps) * self.scale
        x_embed = (x_embed - 0.5) / (x_embed[:, :, -1:] + eps) * self.scale
        index = torch.arange(self.num_feats, dtype=torch.float32, device=mask.device)
        dim_t = self.temperature ** (2 * torch.div(index, 2, rounding_mode="floor") / self.num_feats)
        pos_x = x_embed[..., None] / dim_t
        pos_y = y_embed[..., None] / dim_t
        pos_x = torch.stack((pos_x[..., 0::2].sin(), pos_x[..., 1::2].cos()), dim=4).flatten(3)
        pos_y = torch.stack((pos_y[..., 0::2].sin(), pos_y[..., 1::2].cos()), dim=4).flatten(3)
        return torch.cat((pos_y, pos_x), dim=3).permute(0, 3, 1, 2)
