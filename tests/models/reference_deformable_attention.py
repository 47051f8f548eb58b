"""The per-level `grid_sample` multi-scale deformable attention (egtr 0.1's implementation, kept in the
package as the path ONNX exports trace): the slow, obviously-correct reference that the gather-based
kernel of `egtr.models.deformable_attention` is tested against."""

from __future__ import annotations

import torch
from torch import Tensor

from egtr.models.deformable_attention import grid_sample_attention as grid_sample_deformable_attention


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
