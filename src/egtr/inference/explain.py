"""Why the model relates two objects: the paper's claim made visible for one triplet (subject i, object j).

EGTR reads relations from the decoder's self-attention. For a triplet this module reports
- per decoder layer, the self-attention weight from query i to query j and from j to i: the softmax over
  all N keys of q_i . k / sqrt(d_head), per head and averaged over heads, recomputed exactly from the
  by-products `attention_queries` / `attention_keys` [B,L,N,d] (1/N is the uniform level);
- the gate weight of each relation source for the pair (i, j) (`relation_gates` [B,N,N,S]: the decoder
  layers feeding the relation head, then the final hidden states when used);
and draws both as a small bar-chart figure.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from egtr.config import EGTRConfig
from egtr.inference.scene_graph import SceneGraph


def attention_from(queries: Tensor, keys: Tensor, heads: int, source: int) -> Tensor:
    """Self-attention weights of query `source` over all keys, per layer and head.

    queries, keys [L,N,d] (unscaled q/k projections) -> [L,H,N], each row summing to 1.
    """
    layers, num_queries, d_model = keys.shape
    d_head = d_model // heads
    query = queries[:, source].reshape(layers, heads, d_head).double()
    key = keys.reshape(layers, num_queries, heads, d_head).double()
    logits = torch.einsum("lhc,lnhc->lhn", query, key) / math.sqrt(d_head)
    return logits.softmax(-1)


def gate_source_names(config: EGTRConfig) -> list[str]:
    """[S] names of the relation sources, in the order of `relation_gates`' last axis."""
    names = [f"layer {layer + 1}" for layer in config.relation_layers]
    return names + (["final hidden"] if config.relation_use_final_hidden else [])


def explain_pair(
    outputs, batch_index: int, subject_query: int, object_query: int, config: EGTRConfig
) -> dict:
    """Attention strengths and gate weights of the query pair (subject, object) of image `batch_index`.

    `outputs` is the model's EGTROutput. Lists are per decoder layer (L) and per head (H).
    """
    queries = outputs.attention_queries[batch_index].detach().cpu()
    keys = outputs.attention_keys[batch_index].detach().cpu()
    heads = config.decoder_attention_heads
    forward = attention_from(queries, keys, heads, subject_query)[:, :, object_query]  # [L,H]
    backward = attention_from(queries, keys, heads, object_query)[:, :, subject_query]  # [L,H]
    gates = outputs.relation_gates[batch_index, subject_query, object_query].detach().float().cpu()
    return {
        "attention": {
            "subject_to_object": forward.mean(1).tolist(),
            "object_to_subject": backward.mean(1).tolist(),
            "subject_to_object_per_head": forward.tolist(),
            "object_to_subject_per_head": backward.tolist(),
            "uniform": 1.0 / keys.shape[1],
        },
        "gates": {"sources": gate_source_names(config), "values": gates.tolist()},
    }


def explain_triplet(outputs, batch_index: int, graph: SceneGraph, rank: int, config: EGTRConfig) -> dict:
    """The explanation of the triplet at 1-based `rank` of `graph` (image `batch_index` of `outputs`)."""
    if not 1 <= rank <= len(graph.triplets):
        raise ValueError(f"{graph.source}: no triplet at rank {rank} ({len(graph.triplets)} triplets)")
    triplet = graph.triplets[rank - 1]
    subject_query, object_query = int(graph.queries[triplet.subject]), int(graph.queries[triplet.object])
    return {
        "rank": rank,
        "triplet": graph.describe(rank - 1),
        "subject": triplet.subject,
        "predicate": graph.predicate_names[rank - 1],
        "object": triplet.object,
        "score": triplet.score,
        "subject_query": subject_query,
        "object_query": object_query,
        **explain_pair(outputs, batch_index, subject_query, object_query, config),
    }


def draw_explanation(explanation: dict[str, Any], path: str | Path, title: str = "") -> Path:
    """Write a PNG: per-layer attention i->j and j->i (bars = head mean, dots = heads) and gate weights."""
    import numpy as np

    from egtr.figures import new_figure, save_figure

    attention, gates = explanation["attention"], explanation["gates"]
    layers = np.arange(1, len(attention["subject_to_object"]) + 1)
    figure = new_figure(11, 4)
    left, right = figure.subplots(1, 2, gridspec_kw={"width_ratios": [3, 2]})
    width = 0.38
    for offset, key, label, colour in (
        (-width / 2, "subject_to_object", "subject → object", "tab:blue"),
        (width / 2, "object_to_subject", "object → subject", "tab:orange"),
    ):
        left.bar(layers + offset, attention[key], width, label=label + " (mean of heads)", color=colour)
        per_head = np.asarray(attention[f"{key}_per_head"])  # [L,H]
        xs = np.repeat(layers + offset, per_head.shape[1])
        left.scatter(xs, per_head.ravel(), s=10, color="black", alpha=0.6, zorder=3)
    left.axhline(attention["uniform"], color="grey", linestyle="--", linewidth=1, label="uniform (1/N)")
    left.set_xticks(layers)
    left.set_xlabel("decoder layer")
    left.set_ylabel("self-attention weight")
    left.set_title("attention between the two queries (dots: heads)")
    left.legend(fontsize=8)
    sources = gates["sources"]
    right.barh(np.arange(len(sources)), gates["values"], color="tab:green")
    right.set_yticks(np.arange(len(sources)), sources)
    right.invert_yaxis()
    right.set_xlim(0, 1)
    right.set_xlabel("gate weight (sigmoid)")
    right.set_title("relation source gates for the pair")
    heading = f"{explanation['triplet']}  (rank {explanation['rank']}, score {explanation['score']:.3g})"
    figure.suptitle(f"{title}\n{heading}" if title else heading, fontsize=10)
    figure.tight_layout()
    return save_figure(figure, path)
