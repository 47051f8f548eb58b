"""Sine position embedding of a padded feature map (architecture.md §5.2).

Each real pixel gets coordinates (row, column) = how many real pixels of its column / row lie up to and
including it, mapped to (0, 2π]: c -> (c - 0.5) / (c_total + 1e-6) * 2π. A coordinate c becomes `num_feats`
channels, pair k = (sin, cos) of c / temperature^(2k / num_feats), for k = 0 .. num_feats/2 - 1; the row
channels come first, then the column channels.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


def sine_features(coordinates: Tensor, num_feats: int, temperature: float) -> Tensor:
    """[B,H,W] angles -> [B,H,W,num_feats]: (sin, cos) of angle / temperature^(2k/num_feats) per pair k."""
    pair = torch.arange(num_feats // 2, dtype=torch.float32, device=coordinates.device)
    wavelengths = temperature ** (2 * pair / num_feats)  # [num_feats / 2]
    phases = coordinates[..., None] / wavelengths
    return torch.stack((phases.sin(), phases.cos()), -1).flatten(-2)


class SinePositionEmbedding(nn.Module):
    """Normalized 2-d sine/cosine embedding of a mask: `num_feats` channels per axis (module docstring)."""

    def __init__(
        self, num_feats: int = 128, temperature: float = 10000.0, scale: float = 2 * math.pi
    ) -> None:
        super().__init__()
        if num_feats % 2:
            raise ValueError(f"num_feats must be even (sin/cos pairs), got {num_feats}")
        self.num_feats = num_feats
        self.temperature = temperature
        self.scale = scale

    def forward(self, mask: Tensor) -> Tensor:
        """mask [B,H,W] bool (True = real pixel) -> [B, 2*num_feats, H, W] float32."""
        rows = mask.cumsum(1, dtype=torch.float32)  # real pixels above and at each pixel, per column
        columns = mask.cumsum(2, dtype=torch.float32)
        angles = []
        for counts, totals in ((rows, rows[:, -1:, :]), (columns, columns[:, :, -1:])):
            angles.append((counts - 0.5) / (totals + 1e-6) * self.scale)
        features = [sine_features(angle, self.num_feats, self.temperature) for angle in angles]
        return torch.cat(features, -1).permute(0, 3, 1, 2)
