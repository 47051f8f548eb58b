"""Output containers of the detector and of EGTR (architecture.md §4)."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

from egtr.models.denoising import DenoisingQueries


@dataclass
class DenoisingOutput:
    """What the denoising queries of a training forward predict (D = groups x slots; models/denoising.py)."""

    queries: DenoisingQueries  # the noised inputs, with which slot copies which object
    decoder_logits: Tensor  # [B,L,D,C] class logits of every decoder layer
    decoder_boxes: Tensor  # [B,L,D,4] boxes of every decoder layer


@dataclass
class DetectorOutput:
    """What the Deformable DETR detector returns.

    B = batch, N = queries, C = object classes, L = decoder layers, d = d_model.
    """

    logits: Tensor  # [B,N,C] raw class logits of the last decoder layer (sigmoid/focal; no background)
    pred_boxes: Tensor  # [B,N,4] normalized (cx,cy,w,h) relative to the unpadded image
    decoder_logits: Tensor  # [B,L,N,C] class logits of every decoder layer (last = logits)
    decoder_boxes: Tensor  # [B,L,N,4] boxes of every decoder layer (last = pred_boxes)
    last_hidden_state: Tensor  # [B,N,d] final decoder hidden states
    attention_queries: Tensor  # [B,L,N,d] self-attention q_proj(h + pos) of every layer, unscaled
    attention_keys: Tensor  # [B,L,N,d] self-attention k_proj(h + pos) of every layer
    denoising: DenoisingOutput | None = None  # with denoising queries (training), else None


@dataclass
class EGTROutput:
    """EGTR forward output; subject index i is the first N axis, object index j the second."""

    logits: Tensor  # [B,N,C]
    pred_boxes: Tensor  # [B,N,4]
    rel_logits: Tensor  # [B,N,N,R]
    connectivity_logits: Tensor | None  # [B,N,N] (None when use_connectivity is off)
    pred_rel: Tensor  # [B,N,N,R] sigmoid(rel_logits), after logit adjustment when enabled
    pred_connectivity: Tensor  # [B,N,N] sigmoid(connectivity_logits); ones when the head is off
    attention_queries: Tensor  # [B,L,N,d]
    attention_keys: Tensor  # [B,L,N,d]
    decoder_logits: Tensor  # [B,L,N,C] (for auxiliary losses)
    decoder_boxes: Tensor  # [B,L,N,4]
    last_hidden_state: Tensor  # [B,N,d]
    relation_gates: Tensor  # [B,N,N,S]
    denoising: DenoisingOutput | None = None  # with denoising queries (training), else None
