"""Deformable DETR encoder and decoder (post-norm, architecture.md §5.2).

The decoder RETURNS the by-products EGTR reads: every layer's self-attention query and key projections
q_proj(h + pos) and k_proj(h + pos) (architecture.md §5.3), alongside the hidden states of every layer.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from egtr.models.deformable_attention import MultiScaleDeformableAttention, level_sizes
from egtr.models.inplace import add_, relu_


def feed_forward(x: Tensor, layer: nn.Module) -> Tensor:
    """Post-norm FFN block of an encoder/decoder layer: LN(x + drop(fc2(drop(relu(fc1(x)))))).

    In fp16 training, where the block overflowed, infinities become ±(largest fp16 - 1000), as officially.
    """
    hidden = relu_(layer.fc1(x))
    hidden = F.dropout(hidden, p=layer.activation_dropout, training=layer.training)
    out = layer.final_layer_norm(
        residual(x, F.dropout(layer.fc2(hidden), p=layer.dropout, training=layer.training))
    )
    if layer.training and out.dtype == torch.float16:
        limit = torch.finfo(torch.float16).max - 1000
        out = torch.where(torch.isfinite(out).all(), out, out.clamp(-limit, limit))
    return out


def residual(x: Tensor, branch: Tensor) -> Tensor:
    """x + branch. `branch` is a fresh output that nothing else reads and whose backward does not need it
    (a linear layer's or dropout's), so the sum is written into it where that is free (`inplace.add_`),
    unless its dtype is narrower than the sum's (autocast): then a new tensor of the promoted dtype, as
    `x + branch` gives."""
    if torch.promote_types(x.dtype, branch.dtype) != branch.dtype:
        return x + branch
    return add_(branch, x)


# queries per chunk of an encoder layer at inference (EncoderLayer.forward_in_chunks): 2,048 instead of 4,096
# took 20-50 MB off the peak of `egtr predict` at 800x1333 at the same speed (BENCHMARKS.md)
ENCODER_CHUNK = 2048


def chunks_queries(x: Tensor, training: bool) -> bool:
    """Whether an encoder layer runs its queries in chunks: at inference (no autograd, eval mode) on maps
    larger than a chunk, and not while an export or a compiler traces the model (one graph for any size)."""
    tracing = torch.onnx.is_in_onnx_export() or torch.jit.is_tracing() or torch.compiler.is_compiling()
    return not (training or torch.is_grad_enabled() or tracing) and x.shape[1] > ENCODER_CHUNK


def encoder_reference_points(spatial_shapes: list[tuple[int, int]], valid_ratios: Tensor) -> Tensor:
    """Every pixel centre of every level as a point in [0, 1] of the valid (unpadded) region, then seen
    from each level: centre / (valid ratio of its level * size) * valid ratio of the reading level.

    Args:
        spatial_shapes: (h_l, w_l) per level.
        valid_ratios: [B, L, 2] (w, h) fraction of each level that is not padding.
    Returns:
        [B, S, L, 2] (x, y) reference points, S = Σ h_l * w_l, pixels in row-major order per level.
    """
    device = valid_ratios.device
    per_level = []
    for level, (height, width) in enumerate(spatial_shapes):
        size = level_sizes([(height, width)], device)[0]  # (w, h), computed from the input when traced
        column = torch.arange(width, dtype=torch.float32, device=device) + 0.5
        row = torch.arange(height, dtype=torch.float32, device=device) + 0.5
        centres = torch.stack(torch.broadcast_tensors(column[None, :], row[:, None]), -1).view(-1, 2)
        per_level.append(centres[None] / (valid_ratios[:, None, level] * size))  # [B, h*w, 2]
    return torch.cat(per_level, 1)[:, :, None] * valid_ratios[:, None]


class EncoderLayer(nn.Module):
    def __init__(
        self,
        d_model: int,
        heads: int,
        levels: int,
        points: int,
        ffn_dim: int,
        dropout: float,
        activation_dropout: float,
    ) -> None:
        super().__init__()
        self.self_attn = MultiScaleDeformableAttention(d_model, levels, heads, points)
        self.self_attn_layer_norm = nn.LayerNorm(d_model)
        self.fc1 = nn.Linear(d_model, ffn_dim)
        self.fc2 = nn.Linear(ffn_dim, d_model)
        self.final_layer_norm = nn.LayerNorm(d_model)
        self.dropout, self.activation_dropout = dropout, activation_dropout

    def forward(
        self,
        x: Tensor,
        pos: Tensor,
        mask: Tensor,
        reference_points: Tensor,
        spatial_shapes: list[tuple[int, int]],
        overwrite: bool = False,
    ) -> Tensor:
        """x, pos [B,S,d]; mask [B,S] bool (True = real); reference_points [B,S,L,2] -> [B,S,d].
        `overwrite`: `x` may be overwritten (at inference, see `forward_in_chunks`)."""
        if chunks_queries(x, self.training):
            return self.forward_in_chunks(x, pos, mask, reference_points, spatial_shapes, overwrite)
        attended = self.self_attn(x + pos, x, mask, reference_points, spatial_shapes)
        x = self.self_attn_layer_norm(
            residual(x, F.dropout(attended, p=self.dropout, training=self.training))
        )
        return feed_forward(x, self)

    def forward_in_chunks(
        self,
        x: Tensor,
        pos: Tensor,
        mask: Tensor,
        reference_points: Tensor,
        spatial_shapes: list[tuple[int, int]],
        overwrite: bool = False,
    ) -> Tensor:
        """`forward` at inference, ENCODER_CHUNK queries at a time (written over `x` when `overwrite`): the
        values are projected once from the whole map, then each chunk's attention, norm and FFN run on its
        own rows (every step but the values is per query, so a chunk's rows of `x` are not read again), and
        the largest temporaries (the FFN's [B,S,ffn_dim] hidden layer, the sampling offsets and points) hold
        a chunk, not the map: over 100 MB less at 800x1333 for the Visual Genome preset. The same numbers
        as the whole-map path up to float rounding (tested)."""
        value = self.self_attn.values(x, mask)
        out = x if overwrite else torch.empty_like(x)
        for start in range(0, x.shape[1], ENCODER_CHUNK):
            rows = slice(start, start + ENCODER_CHUNK)
            chunk = x[:, rows]
            attended = self.self_attn.attend(
                chunk + pos[:, rows], value, reference_points[:, rows], spatial_shapes
            )
            out[:, rows] = feed_forward(self.self_attn_layer_norm(residual(chunk, attended)), self)
        return out


class DeformableEncoder(nn.Module):
    def __init__(self, layers: int, dropout: float, **layer_args: float) -> None:
        super().__init__()
        self.dropout = dropout
        self.layers = nn.ModuleList(EncoderLayer(dropout=dropout, **layer_args) for _ in range(layers))

    def forward(
        self,
        x: Tensor,
        pos: Tensor,
        mask: Tensor,
        valid_ratios: Tensor,
        spatial_shapes: list[tuple[int, int]],
        overwrite: bool = False,
    ) -> Tensor:
        """x, pos [B,S,d] flattened levels; mask [B,S]; valid_ratios [B,L,2] -> memory [B,S,d].
        `overwrite`: `x` is the caller's temporary, which inference may overwrite."""
        reference_points = encoder_reference_points(spatial_shapes, valid_ratios)
        x = F.dropout(x, p=self.dropout, training=self.training)  # official quirk: dropout on the input
        for index, layer in enumerate(self.layers):
            x = layer(x, pos, mask, reference_points, spatial_shapes, overwrite or index > 0)
        return x


class QueryKeySelfAttention(nn.Module):
    """Multi-head self-attention that also returns its query and key projections.

    q = q_proj(h + pos), k = k_proj(h + pos), v = v_proj(h); no mask.
    """

    def __init__(self, d_model: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.heads, self.dropout = heads, dropout
        self.q_proj = nn.Linear(d_model, d_model)
        self.k_proj = nn.Linear(d_model, d_model)
        self.v_proj = nn.Linear(d_model, d_model)
        self.out_proj = nn.Linear(d_model, d_model)

    def forward(
        self, hidden: Tensor, pos: Tensor, attention_mask: Tensor | None = None
    ) -> tuple[Tensor, Tensor, Tensor]:
        """hidden, pos [B,N,d] -> (output [B,N,d], q [B,N,d], k [B,N,d]); q and k unscaled.

        attention_mask: None (every query sees every key), or [B,1,N,N] bool, True = may attend."""
        batch, queries, d_model = hidden.shape
        q = self.q_proj(hidden + pos)
        k = self.k_proj(hidden + pos)
        v = self.v_proj(hidden)

        def split(t: Tensor) -> Tensor:
            return t.view(batch, queries, self.heads, d_model // self.heads).transpose(1, 2)

        attended = F.scaled_dot_product_attention(
            split(q),
            split(k),
            split(v),
            attn_mask=attention_mask,
            dropout_p=self.dropout if self.training else 0.0,
        )
        output = self.out_proj(attended.transpose(1, 2).reshape(batch, queries, d_model))
        return output, q, k


class DecoderLayer(nn.Module):
    def __init__(
        self,
        d_model: int,
        heads: int,
        levels: int,
        points: int,
        ffn_dim: int,
        dropout: float,
        attention_dropout: float,
        activation_dropout: float,
    ) -> None:
        super().__init__()
        self.self_attn = QueryKeySelfAttention(d_model, heads, attention_dropout)
        self.self_attn_layer_norm = nn.LayerNorm(d_model)
        self.encoder_attn = MultiScaleDeformableAttention(d_model, levels, heads, points)
        self.encoder_attn_layer_norm = nn.LayerNorm(d_model)
        self.fc1 = nn.Linear(d_model, ffn_dim)
        self.fc2 = nn.Linear(ffn_dim, d_model)
        self.final_layer_norm = nn.LayerNorm(d_model)
        self.dropout, self.activation_dropout = dropout, activation_dropout

    def forward(
        self,
        hidden: Tensor,
        pos: Tensor,
        memory: Tensor,
        memory_mask: Tensor,
        reference_points: Tensor,
        spatial_shapes: list[tuple[int, int]],
        self_attention_mask: Tensor | None = None,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """hidden, pos [B,N,d]; memory [B,S,d]; reference_points [B,N,L,2]; self_attention_mask None or
        [B,1,N,N] bool (True = may attend) -> (hidden', q, k) all [B,N,d]."""
        attended, q, k = self.self_attn(hidden, pos, self_attention_mask)
        hidden = self.self_attn_layer_norm(
            residual(hidden, F.dropout(attended, p=self.dropout, training=self.training))
        )
        attended = self.encoder_attn(hidden + pos, memory, memory_mask, reference_points, spatial_shapes)
        hidden = self.encoder_attn_layer_norm(
            residual(hidden, F.dropout(attended, p=self.dropout, training=self.training))
        )
        return feed_forward(hidden, self), q, k


class DeformableDecoder(nn.Module):
    def __init__(self, layers: int, **layer_args: float) -> None:
        super().__init__()
        self.layers = nn.ModuleList(DecoderLayer(**layer_args) for _ in range(layers))

    def forward(
        self,
        target: Tensor,
        query_pos: Tensor,
        reference_points: Tensor,
        memory: Tensor,
        memory_mask: Tensor,
        valid_ratios: Tensor,
        spatial_shapes: list[tuple[int, int]],
        self_attention_mask: Tensor | None = None,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Run all decoder layers.

        Args:
            target, query_pos: [B,N,d] initial content and query position embedding.
            reference_points: [B,N,2] (x, y) in [0,1], fixed for all layers (no box refinement).
            memory: [B,S,d] encoder output; memory_mask [B,S]; valid_ratios [B,L,2].
            self_attention_mask: None, or [B,1,N,N] bool (True = may attend), e.g. for query denoising.
        Returns:
            hidden states [B,L,N,d], attention queries [B,L,N,d], attention keys [B,L,N,d].
        """
        level_points = reference_points[:, :, None] * valid_ratios[:, None]
        hidden, states, queries, keys = target, [], [], []
        for layer in self.layers:
            hidden, q, k = layer(
                hidden, query_pos, memory, memory_mask, level_points, spatial_shapes, self_attention_mask
            )
            states.append(hidden)
            queries.append(q)
            keys.append(k)
        return torch.stack(states, 1), torch.stack(queries, 1), torch.stack(keys, 1)
