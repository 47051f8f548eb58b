"""Multi-scale deformable attention (Zhu et al. 2021) in pure PyTorch (grid_sample, no compiled kernel).

Sampling is bilinear with zero padding and `align_corners=False`, the same arithmetic as the CUDA kernel of
the reference implementation. It always runs in float32 (also under autocast).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def multi_scale_deformable_attention(
    value: Tensor,
    spatial_shapes: list[tuple[int, int]],
    sampling_locations: Tensor,
    attention_weights: Tensor,
) -> Tensor:
    """Weighted sum of bilinearly sampled values.

    Args:
        value: [B, S, H, Dh] per-head values of all levels flattened (S = Σ h_l * w_l).
        spatial_shapes: (h_l, w_l) of each of the L levels, in the order of `value`.
        sampling_locations: [B, Q, H, L, P, 2] (x, y) in [0, 1] of each level's unpadded-or-padded map.
        attention_weights: [B, Q, H, L, P], summing to 1 over L*P.
    Returns:
        [B, Q, H * Dh].
    """
    batch, _, heads, head_dim = value.shape
    queries = sampling_locations.shape[1]
    grids = (2 * sampling_locations - 1).transpose(1, 2).flatten(0, 1)  # [B*H, Q, L, P, 2]
    weights = attention_weights.transpose(1, 2).flatten(0, 1)  # [B*H, Q, L, P]
    output = value.new_zeros(batch * heads, head_dim, queries)
    start = 0
    for level, (height, width) in enumerate(spatial_shapes):
        level_value = value[:, start : start + height * width]  # [B, h*w, H, Dh]
        start += height * width
        level_value = level_value.permute(0, 2, 3, 1).reshape(batch * heads, head_dim, height, width)
        sampled = F.grid_sample(
            level_value, grids[:, :, level], mode="bilinear", padding_mode="zeros", align_corners=False
        )  # [B*H, Dh, Q, P]
        output += (sampled * weights[:, None, :, level]).sum(-1)
    return output.view(batch, heads * head_dim, queries).transpose(1, 2)


def level_sizes(spatial_shapes: list[tuple[int, int]], device: torch.device) -> Tensor:
    """[L, 2] float32 (w_l, h_l) of every level.

    Built with `torch.as_tensor`/`torch.stack` rather than `torch.tensor` so that a traced export (where the
    sizes are traced 0-dim tensors) keeps them computed from the input size instead of baking them in.
    """
    sizes = [torch.stack((torch.as_tensor(w), torch.as_tensor(h))) for h, w in spatial_shapes]
    return torch.stack(sizes).to(device=device, dtype=torch.float32)


class MultiScaleDeformableAttention(nn.Module):
    """Deformable attention over L feature levels, H heads, P sampling points per head and level."""

    def __init__(self, d_model: int, n_levels: int, n_heads: int, n_points: int) -> None:
        super().__init__()
        self.d_model, self.n_levels, self.n_heads, self.n_points = d_model, n_levels, n_heads, n_points
        self.sampling_offsets = nn.Linear(d_model, n_heads * n_levels * n_points * 2)
        self.attention_weights = nn.Linear(d_model, n_heads * n_levels * n_points)
        self.value_proj = nn.Linear(d_model, d_model)
        self.output_proj = nn.Linear(d_model, d_model)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Official init: zero offsets with a per-head direction grid as bias, uniform attention."""
        nn.init.zeros_(self.sampling_offsets.weight)
        angles = torch.arange(self.n_heads, dtype=torch.float32) * (2.0 * math.pi / self.n_heads)
        grid = torch.stack([angles.cos(), angles.sin()], -1)
        grid = grid / grid.abs().max(-1, keepdim=True)[0]
        grid = grid.view(self.n_heads, 1, 1, 2).repeat(1, self.n_levels, self.n_points, 1)
        grid = grid * torch.arange(1, self.n_points + 1, dtype=torch.float32).view(1, 1, -1, 1)
        with torch.no_grad():
            self.sampling_offsets.bias.copy_(grid.flatten())
        nn.init.zeros_(self.attention_weights.weight)
        nn.init.zeros_(self.attention_weights.bias)
        for linear in (self.value_proj, self.output_proj):
            nn.init.xavier_uniform_(linear.weight)
            nn.init.zeros_(linear.bias)

    def forward(
        self,
        query: Tensor,
        value_input: Tensor,
        value_mask: Tensor | None,
        reference_points: Tensor,
        spatial_shapes: list[tuple[int, int]],
    ) -> Tensor:
        """Attend from queries to sampled points of the multi-scale value map.

        Args:
            query: [B, Q, d] queries (position embedding already added).
            value_input: [B, S, d] flattened multi-level features.
            value_mask: [B, S] bool, True = real pixel (padded values are zeroed), or None.
            reference_points: [B, Q, L, 2] (x, y) in [0, 1], already scaled by each level's valid ratio.
            spatial_shapes: (h_l, w_l) per level.
        Returns:
            [B, Q, d].
        """
        batch, queries, _ = query.shape
        value = self.value_proj(value_input)
        if value_mask is not None:
            value = value.masked_fill(~value_mask[..., None], 0.0)
        value = value.view(batch, value.shape[1], self.n_heads, self.d_model // self.n_heads)
        offsets = self.sampling_offsets(query).view(
            batch, queries, self.n_heads, self.n_levels, self.n_points, 2
        )
        weights = self.attention_weights(query).view(
            batch, queries, self.n_heads, self.n_levels * self.n_points
        )
        weights = weights.softmax(-1).view(batch, queries, self.n_heads, self.n_levels, self.n_points)
        normalizer = level_sizes(spatial_shapes, query.device)
        with torch.autocast(device_type=query.device.type, enabled=False):
            locations = reference_points.float()[:, :, None, :, None, :] + (
                offsets.float() / normalizer[None, None, None, :, None, :]
            )
            output = multi_scale_deformable_attention(
                value.float(), spatial_shapes, locations, weights.float()
            )
        return self.output_proj(output.to(query.dtype))
