"""Multi-scale deformable attention (Zhu et al. 2021) in pure PyTorch, without a compiled kernel.

Each query reads, per head, P points on each of the L feature levels and sums them with softmax weights.
A point is read bilinearly from its four neighbouring pixels, with zeros outside the map and pixel centres
at (i + 0.5) / size (the arithmetic of `grid_sample(align_corners=False, padding_mode="zeros")` and of the
reference CUDA kernel). Instead of one `grid_sample` per level followed by a weighted sum, each of the four
neighbours of every point of every level becomes a (table row, weight) pair, weight = bilinear weight x
attention weight (0 for a pixel outside its map), and `embedding_bag(mode="sum")` gathers and sums them:
one call per neighbour covers all levels, heads and points, reads the values in place (no per-level
copies) and builds no [.., P, Dh] sampled tensor. ONNX exports use per-level GridSample instead (see
`sample_and_sum`). It always runs in float32 (also under autocast)."""

from __future__ import annotations

import itertools
import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from egtr.models.inplace import masked_fill_


def level_sizes(spatial_shapes: list[tuple[int, int]], device: torch.device) -> Tensor:
    """[L, 2] float32 (w_l, h_l) of every level.

    Built with `torch.as_tensor`/`torch.stack` rather than `torch.tensor` so that a traced export (where the
    sizes are traced 0-dim tensors) keeps them computed from the input size instead of baking them in.
    """
    sizes = [torch.stack((torch.as_tensor(w), torch.as_tensor(h))) for h, w in spatial_shapes]
    return torch.stack(sizes).to(device=device, dtype=torch.float32)


def neighbours(coordinate: Tensor, size: Tensor) -> tuple[tuple[Tensor, Tensor], tuple[Tensor, Tensor]]:
    """The two pixels either side of a coordinate along one axis, with their linear-interpolation weights.

    Args:
        coordinate: [..., L, P] in pixel-index units (pixel i is centred at i), finite.
        size: [L, P] number of pixels of each level along this axis.
    Returns:
        ((index, weight) of the pixel below, (index, weight) of the pixel above), each [..., L, P]; an index
        outside [0, size) is replaced by an in-map one and its weight is 0.
    """
    below = coordinate.floor()
    above = below + 1
    fraction = coordinate - below
    zero = torch.zeros_like(size)
    below_index = torch.clamp(below, zero, size - 1)
    above_index = torch.clamp(above, zero, size - 1)
    return (
        (below_index, (1 - fraction) * (below_index == below)),
        (above_index, fraction * (above_index == above)),
    )


def sample_and_sum(
    value: Tensor, spatial_shapes: list[tuple[int, int]], positions: Tensor, attention_weights: Tensor
) -> Tensor:
    """Σ over levels and points of attention weight x bilinear sample of the values (zeros outside a map).

    Args:
        value: [B, S, H, Dh] per-head values of all levels flattened row-major (S = Σ h_l * w_l).
        spatial_shapes: (h_l, w_l) of each of the L levels, in the order of `value`.
        positions: [B, Q, H, L, P, 2] (x, y) in pixel-index units of each level (pixel (i, j) is centred at
            x = j, y = i). NaN reads nothing.
        attention_weights: [B, Q, H, L, P].
    Returns:
        [B, Q, H * Dh].

    Eager PyTorch gathers with `embedding_bag` (`_gather_and_sum`); an ONNX export traces
    `MultiScaleDeformableAttention.exported_forward` instead, whose runtimes run a per-row gather loop
    thousands of times slower than their GridSample.
    """
    return _gather_and_sum(value, spatial_shapes, positions, attention_weights)


FAR = -1e6  # pixel-index coordinate of a point outside every map, whatever offset is added to it


def far_if_not_finite(centres: Tensor) -> Tensor:
    """Reference centres with every NaN or infinite coordinate replaced by FAR (outside every map), so that
    a point placed from it reads nothing. (A level without real pixels has valid ratio 0 and gives such
    centres.) The eager gather replaces NaN points itself; the exported formulation calls this on the
    [B, Q, L, 2] centres instead of cleaning the 16-32 times larger point tensor of every layer."""
    return torch.nan_to_num(centres, nan=FAR, posinf=FAR, neginf=FAR)


CHUNK_POINTS = 1 << 19  # sampling points per gather chunk: its temporaries stay a few MB each


def _gather_and_sum(
    value: Tensor, spatial_shapes: list[tuple[int, int]], positions: Tensor, attention_weights: Tensor
) -> Tensor:
    """`sample_and_sum` by gathering: each of the four neighbours (below/above in y) x (below/above in x) is
    one `embedding_bag` over the L*P points of every (b, q, h); table = value as [B*S*H, Dh], row
    (b*S + s)*H + h. Queries go in chunks of about CHUNK_POINTS points, which bounds the memory of the
    index and weight tensors (a Visual Genome encoder layer at 800x1333 has 2.8 million points)."""
    batch, total, heads, head_dim = value.shape
    queries, levels, points = positions.shape[1], positions.shape[3], positions.shape[4]
    device = positions.device

    def per_point(numbers: list[int]) -> Tensor:  # [L, P] float32, contiguous: fast broadcasting
        return torch.tensor(numbers, dtype=torch.float32, device=device)[:, None].repeat(1, points)

    widths = per_point([w for _, w in spatial_shapes])
    heights = per_point([h for h, _ in spatial_shapes])
    level_starts = per_point([0, *itertools.accumulate(h * w for h, w in spatial_shapes[:-1])])
    head_rows = (
        torch.arange(batch, device=device)[:, None] * (total * heads) + torch.arange(heads, device=device)
    ).int()[:, None, :, None, None]  # [B, 1, H, 1, 1]
    table = value.reshape(batch * total * heads, head_dim)
    chunk = max(1, CHUNK_POINTS // (batch * heads * levels * points))
    outputs = []
    for start in range(0, queries, chunk):
        chunk_positions = positions[:, start : start + chunk].nan_to_num(nan=-1.0)  # NaN: weight 0 below
        x_neighbours = neighbours(chunk_positions[..., 0], widths)
        y_neighbours = neighbours(chunk_positions[..., 1], heights)
        bags = chunk_positions.shape[0] * chunk_positions.shape[1] * heads
        columns = [(x_index.int() * heads, x_weight) for x_index, x_weight in x_neighbours]
        output = None
        for y_index, y_weight in y_neighbours:
            row_starts = torch.addcmul(level_starts, y_index, widths).int() * heads + head_rows  # exact
            y_weight = y_weight * attention_weights[:, start : start + chunk]
            for column, x_weight in columns:
                corner = F.embedding_bag(
                    (row_starts + column).view(bags, -1),
                    table,
                    per_sample_weights=(y_weight * x_weight).view(bags, -1),
                    mode="sum",
                )  # [B * chunk * H, Dh], a fresh tensor: accumulate in place
                output = corner if output is None else output.add_(corner)
        outputs.append(output.view(batch, -1, heads * head_dim))
    return outputs[0] if len(outputs) == 1 else torch.cat(outputs, 1)


def multi_scale_deformable_attention(
    value: Tensor,
    spatial_shapes: list[tuple[int, int]],
    sampling_locations: Tensor,
    attention_weights: Tensor,
) -> Tensor:
    """Weighted sum of bilinearly sampled values at normalized locations.

    Args:
        value: [B, S, H, Dh] per-head values of all levels flattened (S = Σ h_l * w_l).
        spatial_shapes: (h_l, w_l) of each of the L levels, in the order of `value`.
        sampling_locations: [B, Q, H, L, P, 2] (x, y), [0, 1] spanning each level's (padded) map.
        attention_weights: [B, Q, H, L, P], summing to 1 over L*P.
    Returns:
        [B, Q, H * Dh].
    """
    points = sampling_locations.shape[4]
    sizes = level_sizes(spatial_shapes, sampling_locations.device)[:, None, :].repeat(1, points, 1)
    return sample_and_sum(value, spatial_shapes, sampling_locations * sizes - 0.5, attention_weights)


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
        """Official init. Attention weights 0 (uniform attention); offsets weight 0 and bias = a fixed
        pattern: head m looks along the angle 2π m / H, pushed out to the unit square (the larger of |cos|,
        |sin| is 1), point p of every level at (p + 1) times that step. Value and output projections
        Xavier-uniform with zero bias."""
        angle = torch.arange(self.n_heads, dtype=torch.float32) / self.n_heads * (2 * math.pi)
        direction = torch.stack([angle.cos(), angle.sin()], -1)  # [H, 2]
        direction = direction / direction.abs().amax(-1, keepdim=True)
        steps = torch.arange(1, self.n_points + 1, dtype=torch.float32)
        pattern = direction[:, None, None, :] * steps[None, None, :, None]  # [H, 1, P, 2]
        with torch.no_grad():
            self.sampling_offsets.weight.zero_()
            self.sampling_offsets.bias.copy_(pattern.expand(-1, self.n_levels, -1, -1).flatten())
            self.attention_weights.weight.zero_()
            self.attention_weights.bias.zero_()
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
        if torch.onnx.is_in_onnx_export():
            return self.exported_forward(query, value_input, value_mask, reference_points, spatial_shapes)
        return self.attend(query, self.values(value_input, value_mask), reference_points, spatial_shapes)

    def values(self, value_input: Tensor, value_mask: Tensor | None) -> Tensor:
        """[B, S, d] flattened features and their [B, S] mask -> [B, S, H, Dh] per-head values (padding 0)."""
        value = self.value_proj(value_input)
        if value_mask is not None:  # over the projection's fresh output, not needed by its backward
            value = masked_fill_(value, ~value_mask[..., None], 0.0)
        return value.view(*value.shape[:2], self.n_heads, self.d_model // self.n_heads)

    def attend(
        self, query: Tensor, value: Tensor, reference_points: Tensor, spatial_shapes: list[tuple[int, int]]
    ) -> Tensor:
        """`forward` on the per-head values of `values`: query [B, Q, d], value [B, S, H, Dh],
        reference_points [B, Q, L, 2] -> [B, Q, d]. Each query reads the values alone, so queries may go
        in chunks (the encoder's inference path)."""
        batch, queries, _ = query.shape
        offsets = self.sampling_offsets(query).view(
            batch, queries, self.n_heads, self.n_levels, self.n_points, 2
        )
        weights = self.attention_weights(query).view(
            batch, queries, self.n_heads, self.n_levels * self.n_points
        )
        weights = weights.softmax(-1).view(batch, queries, self.n_heads, self.n_levels, self.n_points)
        with torch.autocast(device_type=query.device.type, enabled=False):
            # location reference + offset / size in [0, 1] = reference * size - 0.5 + offset in pixel units
            sizes = level_sizes(spatial_shapes, query.device)
            centres = reference_points.float() * sizes - 0.5  # [B, Q, L, 2]
            # repeated over the points first, so that the sum broadcasts over heads only (fast)
            centres = centres[:, :, None, :, None, :].repeat(1, 1, 1, 1, self.n_points, 1)
            positions = centres + offsets.float()
            output = sample_and_sum(value.float(), spatial_shapes, positions, weights.float())
        return self.output_proj(output.to(query.dtype))

    def exported_forward(
        self,
        query: Tensor,
        value_input: Tensor,
        value_mask: Tensor | None,
        reference_points: Tensor,
        spatial_shapes: list[tuple[int, int]],
    ) -> Tensor:
        """`forward` as an ONNX export traces it: the same numbers (tested), with one GridSample per level,
        laid out for what ONNX Runtime and OpenVINO run fast (architecture.md, §3 export/):

        - the offsets and attention weights are made head-major ([B, H, Q, K]) by one transpose each that
          keeps their last axis whole, the values by one [B*H, Dh, S] transpose: the runtimes run
          transposes that move the last axis with slow generic kernels;
        - the grid of level l is the [Q, P] slice of that layout; the reference centres are cleaned of
          non-finite values once (`far_if_not_finite`) instead of every point of every layer.
        The projections stay calls of their modules, so that the exported nodes carry their module names
        (INT8 export keeps modules in floating point by name).
        """
        batch, queries, _ = query.shape
        heads, levels, points = self.n_heads, self.n_levels, self.n_points
        head_dim = self.d_model // heads
        value = self.value_proj(value_input)
        if value_mask is not None:
            value = value.masked_fill(~value_mask[..., None], 0.0)
        values = value.transpose(1, 2).reshape(batch * heads, head_dim, -1)  # [B*H, Dh, S]
        offsets = self.sampling_offsets(query).view(batch, queries, heads, -1).transpose(1, 2)  # [B,H,Q,LP2]
        weights = self.attention_weights(query).view(batch, queries, heads, -1).transpose(1, 2)
        weights = weights.softmax(-1).reshape(batch * heads, 1, queries, levels, points)
        sizes = level_sizes(spatial_shapes, query.device)  # [L, 2] (w, h), traced from the input
        centres = far_if_not_finite(reference_points.float() * sizes - 0.5)  # [B, Q, L, 2] pixel index
        # grid coordinate of pixel-index x on a side of n pixels: (2x + 1) / n - 1
        scale = 2 / sizes
        grid_centres = (centres + 0.5) * scale - 1  # [B, Q, L, 2]
        grid = (
            grid_centres[:, None, :, :, None]
            + offsets.reshape(batch, heads, queries, levels, points, 2) * scale[:, None]
        )  # [B, H, Q, L, P, 2]
        grid = grid.reshape(batch * heads, queries, levels, points, 2)
        output = None
        start = 0
        for level, (height, width) in enumerate(spatial_shapes):
            level_value = values[:, :, start : start + height * width].reshape(
                batch * heads, head_dim, height, width
            )
            start += height * width
            sampled = F.grid_sample(
                level_value, grid[:, :, level], "bilinear", "zeros", align_corners=False
            )  # [B*H, Dh, Q, P]
            level_sum = (sampled * weights[:, :, :, level]).sum(-1)  # [B*H, Dh, Q]
            output = level_sum if output is None else output + level_sum
        return self.output_proj(output.view(batch, self.d_model, queries).transpose(1, 2))
