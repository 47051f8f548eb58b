"""The per-level `grid_sample` multi-scale deformable attention (egtr 0.1's implementation): the slow,
obviously-correct reference that the gather-based kernel of `egtr.models.deformable_attention` is tested
against."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def grid_sample_deformable_attention(
    value: Tensor,
    spatial_shapes: list[tuple[int, int]],
    sampling_locations: Tensor,
    attention_weights: Tensor,
) -> Tensor:
    """value [B,S,H,Dh]; sampling_locations [B,Q,H,L,P,2] (x, y) in [0, 1]; attention_weights [B,Q,H,L,P]
    -> [B,Q,H*Dh]: one bilinear `grid_sample` (zeros outside, align_corners=False) per level."""
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
        output = output + (sampled * weights[:, None, :, level]).sum(-1)
    return output.view(batch, heads * head_dim, queries).transpose(1, 2)


def reference_attention_forward(
    module,
    query: Tensor,
    value_input: Tensor,
    value_mask: Tensor | None,
    reference_points: Tensor,
    spatial_shapes: list[tuple[int, int]],
) -> Tensor:
    """egtr 0.1's `MultiScaleDeformableAttention.forward` with the same parameters as `module`:
    locations = reference + offset / (w, h), then the per-level grid_sample kernel, in float32."""
    batch, queries, _ = query.shape
    heads, levels, points = module.n_heads, module.n_levels, module.n_points
    value = module.value_proj(value_input)
    if value_mask is not None:
        value = value.masked_fill(~value_mask[..., None], 0.0)
    value = value.view(batch, value.shape[1], heads, module.d_model // heads)
    offsets = module.sampling_offsets(query).view(batch, queries, heads, levels, points, 2)
    weights = module.attention_weights(query).view(batch, queries, heads, levels * points)
    weights = weights.softmax(-1).view(batch, queries, heads, levels, points)
    normalizer = torch.tensor([(w, h) for h, w in spatial_shapes], dtype=torch.float32, device=query.device)
    with torch.autocast(device_type=query.device.type, enabled=False):
        locations = reference_points.float()[:, :, None, :, None, :] + (
            offsets.float() / normalizer[None, None, None, :, None, :]
        )
        output = grid_sample_deformable_attention(value.float(), spatial_shapes, locations, weights.float())
    return module.output_proj(output.to(query.dtype))
