"""Explanations: attention recomputed from the q/k by-products against a per-head loop, gates, figure."""

import math

import numpy as np
import pytest
import torch
from PIL import Image

from egtr import EGTRConfig
from egtr.inference.explain import attention_from, draw_explanation, explain_pair, gate_source_names

from .conftest import small_model


def reference_attention(queries, keys, heads, source, target):
    """[L][H] softmax_k(q_source . k / sqrt(d_head))[target] with explicit loops."""
    layers, num_queries, d_model = keys.shape
    d_head = d_model // heads
    weights = []
    for layer in range(layers):
        per_head = []
        for head in range(heads):
            columns = slice(head * d_head, (head + 1) * d_head)
            logits = [
                float(queries[layer, source, columns] @ keys[layer, key, columns]) / math.sqrt(d_head)
                for key in range(num_queries)
            ]
            top = max(logits)
            exps = [math.exp(value - top) for value in logits]
            per_head.append(exps[target] / sum(exps))
        weights.append(per_head)
    return weights


def test_attention_weights_match_the_loop_and_the_model_attention():
    generator = torch.Generator().manual_seed(0)
    queries, keys = torch.randn(2, 5, 8, generator=generator), torch.randn(2, 5, 8, generator=generator)
    weights = attention_from(queries, keys, heads=2, source=3)
    assert weights.shape == (2, 2, 5)
    torch.testing.assert_close(weights.sum(-1), torch.ones(2, 2, dtype=torch.float64))
    for target in range(5):
        expected = torch.tensor(reference_attention(queries, keys, 2, 3, target), dtype=torch.float64)
        torch.testing.assert_close(weights[:, :, target], expected)
    # the same weights as torch's scaled dot-product attention, which the decoder runs
    q = queries.view(2, 5, 2, 4).transpose(1, 2)
    k = keys.view(2, 5, 2, 4).transpose(1, 2)
    identity = torch.eye(5).expand(2, 2, 5, 5)  # values = one-hot rows: the output is the weight matrix
    attended = torch.nn.functional.scaled_dot_product_attention(q, k, identity)
    torch.testing.assert_close(weights.float(), attended[:, :, 3, :], atol=1e-6, rtol=1e-5)


def test_explain_pair_reads_the_models_gates_and_attention():
    model = small_model(num_queries=6)
    with torch.inference_mode():
        outputs = model(torch.randn(2, 3, 32, 48), torch.ones(2, 32, 48, dtype=torch.bool))
    explanation = explain_pair(outputs, 1, 4, 2, model.config)
    gates = outputs.relation_gates[1, 4, 2]
    assert explanation["gates"]["values"] == pytest.approx(gates.tolist())
    assert explanation["gates"]["sources"] == ["layer 1", "layer 2", "layer 3", "final hidden"]
    attention = explanation["attention"]
    per_head = reference_attention(outputs.attention_queries[1], outputs.attention_keys[1], 4, 4, 2)
    np.testing.assert_allclose(attention["subject_to_object_per_head"], per_head, rtol=1e-5)
    assert attention["subject_to_object"] == pytest.approx([sum(row) / 4 for row in per_head])
    backward = reference_attention(outputs.attention_queries[1], outputs.attention_keys[1], 4, 2, 4)
    np.testing.assert_allclose(attention["object_to_subject_per_head"], backward, rtol=1e-5)
    assert attention["uniform"] == pytest.approx(1 / 6)


def test_gate_source_names_follow_the_config():
    config = EGTRConfig.small(relation_attention_layers=[0, 2], relation_use_final_hidden=False)
    assert gate_source_names(config) == ["layer 1", "layer 3"]


def test_explanation_figure_is_a_png(tmp_path):
    explanation = {
        "rank": 1,
        "triplet": "0:man riding 1:horse",
        "score": 0.42,
        "attention": {
            "subject_to_object": [0.1, 0.3],
            "object_to_subject": [0.2, 0.05],
            "subject_to_object_per_head": [[0.1, 0.1], [0.5, 0.1]],
            "object_to_subject_per_head": [[0.3, 0.1], [0.05, 0.05]],
            "uniform": 0.1,
        },
        "gates": {"sources": ["layer 1", "layer 2", "final hidden"], "values": [0.2, 0.9, 0.5]},
    }
    path = draw_explanation(explanation, tmp_path / "e.png", title="photo.jpg")
    with Image.open(path) as image:
        assert image.format == "PNG" and image.width > 500 and image.height > 200
        assert len(np.unique(np.asarray(image.convert("RGB")).reshape(-1, 3), axis=0)) > 10  # drawn
