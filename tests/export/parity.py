"""Comparisons of exported and PyTorch results, written out plainly for the parity tests."""

from __future__ import annotations

import numpy as np

RAW_TOLERANCE = 1e-4  # max abs difference of logits, boxes, relation and connectivity logits


def max_differences(reference, other) -> dict[str, float]:
    """{raw output name: max |reference - other|}; both must have the same outputs."""
    differences = {}
    for name in ("logits", "pred_boxes", "rel_logits", "connectivity_logits"):
        expected, actual = getattr(reference, name), getattr(other, name)
        assert (expected is None) == (actual is None), name
        if expected is not None:
            assert expected.shape == actual.shape, name
            differences[name] = float((expected.float() - actual.float()).abs().max())
    return differences


def assert_raw_outputs_match(reference, other) -> None:
    differences = max_differences(reference, other)
    assert all(value <= RAW_TOLERANCE for value in differences.values()), differences


def query_triplets(graph) -> list[tuple[int, int, int, float]]:
    """(subject query, object query, predicate, score) of every triplet, in the graph's order."""
    return [
        (int(graph.queries[t.subject]), int(graph.queries[t.object]), t.predicate, t.score)
        for t in graph.triplets
    ]


def assert_same_triplets(expected_graph, graph, rtol: float = 1e-4) -> None:
    """The same top triplets: rank by rank equal scores (within rtol), and within every run of tied scores
    (equal within rtol) the same set of triplets, except for the last run, which the cut-off may split
    differently (ties are compared as sets)."""
    expected, actual = query_triplets(expected_graph), query_triplets(graph)
    assert len(expected) == len(actual)
    if not expected:
        return
    np.testing.assert_allclose([t[3] for t in actual], [t[3] for t in expected], rtol=rtol, atol=0)
    scores = np.array([t[3] for t in expected])
    # group ranks whose scores tie within rtol; within a group the order (and at the cut, the members)
    # may differ between runtimes
    start = 0
    for end in range(1, len(expected) + 1):
        if end == len(expected) or not np.isclose(scores[end], scores[end - 1], rtol=rtol, atol=0):
            group_expected = {t[:3] for t in expected[start:end]}
            group_actual = {t[:3] for t in actual[start:end]}
            at_cut = end == len(expected)
            assert at_cut or group_expected == group_actual, (start, end, group_expected, group_actual)
            start = end


def assert_same_graph(expected, graph) -> None:
    """Same objects (labels, boxes, scores) and the same triplets (see assert_same_triplets)."""
    assert (graph.width, graph.height) == (expected.width, expected.height)
    assert_same_triplets(expected, graph)
    expected_objects = dict(zip(expected.queries.tolist(), zip(expected.labels, expected.boxes)))
    for query, label, box in zip(graph.queries.tolist(), graph.labels, graph.boxes):
        if query in expected_objects:  # an object only in one graph belongs to a triplet tied at the cut
            assert label == expected_objects[query][0]
            np.testing.assert_allclose(box, expected_objects[query][1], rtol=1e-4, atol=1e-3)
