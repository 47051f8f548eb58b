"""Post-processing against a brute force of the official rules over all N x N x R (architecture.md §5.6)."""

import itertools

import numpy as np
import pytest
import torch

from egtr.evaluation.candidates import (
    graph_constrained_triplets,
    open_images_triplets,
    unconstrained_triplets,
)
from egtr.evaluation.inputs import read_prediction
from egtr.inference.postprocess import PostprocessOptions, postprocess
from egtr.models.outputs import EGTROutput


def random_outputs(batch=2, queries=12, classes=5, predicates=4, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return EGTROutput(
        logits=torch.randn(batch, queries, classes, generator=generator) * 3,
        pred_boxes=torch.rand(batch, queries, 4, generator=generator) * 0.5 + 0.25,
        rel_logits=None,
        connectivity_logits=None,
        pred_rel=torch.rand(batch, queries, queries, predicates, generator=generator) * 1.2
        - 0.1,  # clamp matters
        pred_connectivity=torch.rand(batch, queries, queries, generator=generator) * 1.2,
        attention_queries=None,
        attention_keys=None,
        decoder_logits=None,
        decoder_boxes=None,
        last_hidden_state=None,
        relation_gates=None,
    )


SIZES = torch.tensor([[480, 640], [300, 200]])


def official_terms(outputs, b):
    """Softmax object scores/labels and the clamped rel of image b, as the official evaluate_batch."""
    scores, labels = outputs.logits[b].softmax(-1).max(-1)
    rel = (
        torch.clamp(outputs.pred_rel[b], 0.0, 1.0)
        * torch.clamp(outputs.pred_connectivity[b], 0.0, 1.0)[..., None]
    )
    return scores, labels, rel


def brute_force_pairs(scores, rel, top_k, keep_diagonal):
    n = len(scores)
    pairs = [(i, j) for i, j in itertools.product(range(n), range(n)) if keep_diagonal or i != j]
    pair_score = {(i, j): float(rel[i, j].max() * (scores[i] * scores[j])) for i, j in pairs}
    return sorted(pairs, key=lambda ij: (-pair_score[ij], ij[0] * n + ij[1]))[:top_k]


def brute_force_triplets(scores, rel, top_k):
    n, r = len(scores), rel.shape[-1]
    triplets = [(i, j, p) for i in range(n) for j in range(n) if i != j for p in range(r)]
    value = {t: float(rel[t] * (scores[t[0]] * scores[t[1]])) for t in triplets}
    return sorted(triplets, key=lambda t: -value[t])[:top_k]


def brute_force_open_images(scores, rel, top_k=100, predicates_per_pair=2):
    n = len(scores)
    candidates = []
    for i, j in itertools.product(range(n), range(n)):  # self-pairs included
        best = torch.sort(rel[i, j], descending=True, stable=True)
        for p, value in zip(best.indices[:predicates_per_pair].tolist(), best.values[:predicates_per_pair]):
            candidates.append((float(value * (scores[i] * scores[j])), i, j, p))
    candidates.sort(key=lambda c: -c[0])
    return [c[1:] for c in candidates[:top_k] if c[0] > 1e-5]


def as_list(triplets):
    return list(zip(triplets.subjects.tolist(), triplets.objects.tolist(), triplets.predicates.tolist()))


@pytest.mark.parametrize("top_k", [10, 30])
def test_pairs_serve_graph_constraint_and_no_graph_constraint_exactly(top_k):
    outputs = random_outputs()
    predictions = postprocess(outputs, SIZES, PostprocessOptions(top_k=top_k))
    for b, prediction in enumerate(predictions):
        scores, _, rel = official_terms(outputs, b)
        expected_pairs = brute_force_pairs(scores, rel, top_k, keep_diagonal=False)
        assert [tuple(pair) for pair in prediction["rel_pairs"].tolist()] == expected_pairs
        torch.testing.assert_close(
            prediction["rel_scores"], torch.stack([rel[i, j] for i, j in expected_pairs])
        )
        checked = read_prediction(prediction, rel.shape[-1])
        for k in (1, top_k // 2, top_k):  # any K <= top_k
            assert as_list(unconstrained_triplets(checked, k)) == brute_force_triplets(scores, rel, k)
            graph = as_list(graph_constrained_triplets(checked, k))
            assert graph == [(i, j, int(rel[i, j].argmax())) for i, j in expected_pairs[:k]]


def test_open_images_candidates_from_the_kept_pairs_equal_the_full_selection():
    outputs = random_outputs(queries=10, predicates=6, seed=3)
    predictions = postprocess(
        outputs, SIZES, PostprocessOptions(top_k=15, keep_diagonal=True, detections="queries")
    )
    for b, prediction in enumerate(predictions):
        scores, labels, rel = official_terms(outputs, b)
        selected = open_images_triplets(read_prediction(prediction, 6), top_k=15)
        assert as_list(selected) == brute_force_open_images(scores, rel, top_k=15)
        assert any(i == j for i, j in prediction["rel_pairs"].tolist())  # self-pairs take part
        detections = prediction["detections"]
        torch.testing.assert_close(detections["scores"], scores)
        assert torch.equal(detections["labels"], labels)


def test_objects_boxes_and_detection_list():
    outputs = random_outputs()
    predictions = postprocess(outputs, SIZES, PostprocessOptions(detection_top_k=7))
    for b, prediction in enumerate(predictions):
        scores, labels, _ = official_terms(outputs, b)
        height, width = SIZES[b].tolist()
        cx, cy, w, h = outputs.pred_boxes[b].unbind(-1)
        expected_boxes = torch.stack((cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2), -1) * torch.tensor(
            [width, height, width, height], dtype=torch.float32
        )
        torch.testing.assert_close(prediction["boxes"], expected_boxes)
        torch.testing.assert_close(prediction["scores"], scores)
        assert torch.equal(prediction["labels"], labels)
        probabilities = outputs.logits[b].sigmoid()
        flat = sorted(
            ((float(probabilities[q, c]), q, c) for q in range(probabilities.shape[0]) for c in range(5)),
            reverse=True,
        )[:7]
        detections = prediction["detections"]
        assert detections["labels"].tolist() == [c for _, _, c in flat]
        torch.testing.assert_close(detections["boxes"], prediction["boxes"][[q for _, q, _ in flat]])
        np.testing.assert_allclose(detections["scores"].numpy(), [v for v, _, _ in flat], rtol=1e-6)


def test_sigmoid_object_scores_and_few_queries():
    outputs = random_outputs(batch=1, queries=3)
    (prediction,) = postprocess(outputs, SIZES[:1], PostprocessOptions(object_score="sigmoid"))
    scores, labels = outputs.logits[0].sigmoid().max(-1)
    torch.testing.assert_close(prediction["scores"], scores)
    assert torch.equal(prediction["labels"], labels)
    assert len(prediction["rel_pairs"]) == 6  # 3 x 3 pairs minus 3 self-pairs, fewer than top_k
    assert prediction["rel_pairs"].dtype == torch.int64


def test_ties_keep_the_lower_flat_index_first():
    outputs = random_outputs(batch=1, queries=4, seed=1)
    outputs.pred_rel = torch.full_like(outputs.pred_rel, 0.5)
    outputs.pred_connectivity = torch.ones_like(outputs.pred_connectivity)
    outputs.logits = torch.zeros_like(outputs.logits)  # equal object scores -> all pair scores tie
    (prediction,) = postprocess(outputs, SIZES[:1])
    assert [tuple(p) for p in prediction["rel_pairs"].tolist()] == [
        (i, j) for i in range(4) for j in range(4) if i != j
    ]


def test_bad_sizes_are_rejected():
    with pytest.raises(ValueError, match=r"image_sizes must be \[B,2\]"):
        postprocess(random_outputs(), SIZES[:1])
