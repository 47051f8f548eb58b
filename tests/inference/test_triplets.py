"""Triplet selection, de-duplication included, against slow references of the official rules.

architecture.md §5.6 states the rules.
"""

import numpy as np
import pytest
import torch

from egtr.inference.names import Vocabulary
from egtr.inference.postprocess import PostprocessOptions, postprocess
from egtr.inference.triplets import (
    TripletOptions,
    build_scene_graph,
    duplicate_representatives,
    rank_triplets,
)
from egtr.models.outputs import EGTROutput

from .official_reference import official_candidates

SIZE = torch.tensor([[60, 80]])
VOCABULARY = Vocabulary([f"c{i}" for i in range(4)], [f"p{i}" for i in range(3)], "test")


def random_outputs(queries=8, classes=4, predicates=3, seed=0, copies=1):
    """Random outputs of one image; with `copies` > 1 the queries come in groups of that many
    near-identical boxes of one class."""
    generator = torch.Generator().manual_seed(seed)
    boxes = torch.rand(1, queries, 4, generator=generator) * 0.4 + 0.3
    logits = torch.randn(1, queries, classes, generator=generator) * 3
    if copies > 1:
        first = torch.arange(queries) // copies * copies
        boxes[0] = boxes[0, first] + 0.002 * (torch.arange(queries) % copies)[:, None]
        logits[0] = logits[0, first] + torch.rand(queries, classes, generator=generator) * 0.01
    return EGTROutput(
        logits=logits,
        pred_boxes=boxes,
        rel_logits=None,
        connectivity_logits=None,
        pred_rel=torch.rand(1, queries, queries, predicates, generator=generator),
        pred_connectivity=torch.rand(1, queries, queries, generator=generator),
        attention_queries=None,
        attention_keys=None,
        decoder_logits=None,
        decoder_boxes=None,
        last_hidden_state=None,
        relation_gates=None,
    )


def prediction_of(outputs, options):
    queries = outputs.logits.shape[1]
    (prediction,) = postprocess(outputs, SIZE, PostprocessOptions(top_k=options.pairs_needed(queries)))
    return prediction


def reference_representatives(boxes, labels, scores, threshold):
    def iou(a, b):
        width = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
        height = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
        inter = width * height
        return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)

    kept, representative = [], list(range(len(scores)))
    for query in sorted(range(len(scores)), key=lambda q: -scores[q]):
        match = [k for k in kept if labels[k] == labels[query] and iou(boxes[k], boxes[query]) > threshold]
        if match:
            representative[query] = match[0]
        else:
            kept.append(query)
    return representative


def as_tuples(ranked):
    return list(zip(ranked.subjects.tolist(), ranked.objects.tolist(), ranked.predicates.tolist()))


@pytest.mark.parametrize("graph_constraint", [True, False])
@pytest.mark.parametrize("top_k", [1, 20, 100])
def test_ranking_is_the_official_one(graph_constraint, top_k):
    outputs = random_outputs(queries=12)
    options = TripletOptions(top_k=top_k, graph_constraint=graph_constraint)
    ranked, representative = rank_triplets(prediction_of(outputs, options), options)
    expected = official_candidates(outputs, graph_constraint)[:top_k]
    assert as_tuples(ranked) == [c[:3] for c in expected]
    np.testing.assert_allclose(ranked.scores, [c[3] for c in expected], rtol=1e-5)
    assert representative.tolist() == list(range(12))


def test_threshold_cuts_the_ranked_list():
    outputs = random_outputs()
    candidates = official_candidates(outputs, True)
    threshold = candidates[9][3]  # the 10th best score: 10 triplets reach it
    options = TripletOptions(top_k=30, threshold=threshold)
    ranked, _ = rank_triplets(prediction_of(outputs, options), options)
    assert as_tuples(ranked) == [c[:3] for c in candidates[:10]]


def test_duplicate_representatives_match_a_slow_greedy_merge():
    rng = np.random.default_rng(0)
    for _ in range(20):
        corners = rng.uniform(0, 50, (15, 2))
        boxes = np.concatenate((corners, corners + rng.uniform(5, 30, (15, 2))), 1)
        boxes[5:10] = boxes[:5] + rng.uniform(-2, 2, (5, 4))
        labels = rng.integers(0, 2, 15)
        scores = rng.uniform(0, 1, 15)
        for threshold in (0.0, 0.5, 0.9):
            assert duplicate_representatives(boxes, labels, scores, threshold).tolist() == (
                reference_representatives(boxes.tolist(), labels.tolist(), scores.tolist(), threshold)
            )


@pytest.mark.parametrize("graph_constraint", [True, False])
@pytest.mark.parametrize(
    ("queries", "copies", "top_k"),
    [(8, 2, 2), (8, 2, 5), (8, 2, 15), (12, 6, 7)],  # (12, 6, 7): the ranked prefix must grow to all
)
def test_deduplication_remaps_drops_and_refills(graph_constraint, queries, copies, top_k):
    outputs = random_outputs(queries=queries, copies=copies, seed=2)
    options = TripletOptions(top_k=top_k, graph_constraint=graph_constraint, dedup_iou=0.7)
    prediction = prediction_of(outputs, options)
    ranked, representative = rank_triplets(prediction, options)
    expected_representative = reference_representatives(
        prediction["boxes"].tolist(), prediction["labels"].tolist(), prediction["scores"].tolist(), 0.7
    )
    assert representative.tolist() == expected_representative
    assert len(set(expected_representative)) == queries // copies  # each group merged into one
    expected, seen = [], set()
    for i, j, p, score in official_candidates(outputs, graph_constraint):
        i, j = expected_representative[i], expected_representative[j]
        key = (i, j) if graph_constraint else (i, j, p)
        if i != j and key not in seen:
            seen.add(key)
            expected.append((i, j, p, score))
    assert as_tuples(ranked) == [c[:3] for c in expected[:top_k]]
    np.testing.assert_allclose(ranked.scores, [c[3] for c in expected[:top_k]], rtol=1e-5)


def test_scene_graph_lists_triplet_objects_first_then_extra_detections():
    outputs = random_outputs(queries=10, seed=4)
    options = TripletOptions(top_k=3, object_threshold=0.0)
    prediction = prediction_of(outputs, options)
    graph = build_scene_graph(prediction, options, VOCABULARY, "x.jpg", 80, 60)
    best = official_candidates(outputs, True)[:3]
    in_triplets = list(dict.fromkeys(q for c in best for q in c[:2]))
    scores = prediction["scores"].numpy()
    rest = sorted(set(range(10)) - set(in_triplets), key=lambda q: -scores[q])
    assert graph.queries.tolist() == in_triplets + rest
    for triplet, candidate, name in zip(graph.triplets, best, graph.predicate_names):
        assert (
            graph.queries[triplet.subject],
            graph.queries[triplet.object],
            triplet.predicate,
        ) == candidate[:3]
        assert name == f"p{candidate[2]}"
    np.testing.assert_array_equal(graph.boxes, prediction["boxes"].numpy()[graph.queries])
    assert graph.label_names == [f"c{label}" for label in prediction["labels"][graph.queries].tolist()]
    only_triplets = build_scene_graph(prediction, TripletOptions(top_k=3), VOCABULARY, "x.jpg", 80, 60)
    assert only_triplets.queries.tolist() == in_triplets


def test_options_are_checked():
    with pytest.raises(ValueError, match="top_k"):
        TripletOptions(top_k=0)
    with pytest.raises(ValueError, match="dedup_iou"):
        TripletOptions(dedup_iou=1.0)
