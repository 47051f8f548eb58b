"""SceneGraph JSON form: schema, round trip, checks."""

import json

import numpy as np
import pytest

from egtr.inference.scene_graph import SceneGraph, Triplet

OBJECT_KEYS = {"id", "label", "name", "score", "box", "query"}
TRIPLET_KEYS = {"subject", "predicate", "object", "score", "subject_name", "predicate_name", "object_name"}


def check_schema(data: dict) -> None:
    """The JSON schema of one image's scene graph (shared with the predictor and CLI tests)."""
    assert {"image", "width", "height", "objects", "triplets"} <= set(data)
    assert isinstance(data["image"], str) and data["width"] > 0 and data["height"] > 0
    for position, entry in enumerate(data["objects"]):
        assert set(entry) == OBJECT_KEYS and entry["id"] == position
        assert len(entry["box"]) == 4 and all(isinstance(v, float) for v in entry["box"])
        assert isinstance(entry["name"], str) and 0 <= entry["score"] <= 1
    scores = [t["score"] for t in data["triplets"]]
    assert scores == sorted(scores, reverse=True)
    for entry in data["triplets"]:
        assert set(entry) == TRIPLET_KEYS
        assert entry["subject"] != entry["object"]
        assert entry["subject_name"] == data["objects"][entry["subject"]]["name"]
        assert entry["object_name"] == data["objects"][entry["object"]]["name"]


def example_graph() -> SceneGraph:
    return SceneGraph(
        source="dir/photo.jpg",
        width=80,
        height=60,
        boxes=np.array([[1, 2, 30, 40], [10, 5, 70, 50]], np.float32),
        labels=np.array([3, 0]),
        label_names=["man", "horse"],
        scores=np.array([0.9, 0.75], np.float32),
        queries=np.array([17, 4]),
        triplets=[Triplet(0, 2, 1, 0.5), Triplet(1, 0, 0, 0.25)],
        predicate_names=["riding", "near"],
    )


def test_dict_and_json_forms_agree_and_round_trip():
    graph = example_graph()
    data = graph.to_dict()
    check_schema(data)
    assert json.loads(graph.to_json()) == data
    assert data["triplets"][0] == {
        "subject": 0,
        "predicate": 2,
        "object": 1,
        "score": 0.5,
        "subject_name": "man",
        "predicate_name": "riding",
        "object_name": "horse",
    }
    assert data["objects"][1] == {
        "id": 1,
        "label": 0,
        "name": "horse",
        "score": 0.75,
        "box": [10.0, 5.0, 70.0, 50.0],
        "query": 4,
    }
    back = SceneGraph.from_dict(data)
    assert back.to_dict() == data
    assert graph.describe(0) == "0:man riding 1:horse"
    assert len(graph.to_json().splitlines()) == 13  # one line per object and per triplet


def test_empty_graph_and_explanation_entry():
    graph = example_graph()
    empty = SceneGraph(
        graph.source,
        8,
        6,
        np.zeros((0, 4), np.float32),
        np.zeros(0, np.int64),
        [],
        np.zeros(0),
        np.zeros(0, np.int64),
        [],
        [],
        explanation={"rank": 1},
    )
    assert json.loads(empty.to_json()) == empty.to_dict()
    assert empty.to_dict()["objects"] == [] and empty.to_dict()["explain"] == {"rank": 1}
    assert SceneGraph.from_dict(empty.to_dict()).boxes.shape == (0, 4)


def test_inconsistent_lengths_are_rejected():
    graph = example_graph()
    with pytest.raises(ValueError, match="label_names has 1 entries"):
        SceneGraph(
            graph.source, 80, 60, graph.boxes, graph.labels, ["man"], graph.scores, graph.queries, [], []
        )
    with pytest.raises(ValueError, match="2 triplets but 1 names"):
        SceneGraph(
            graph.source,
            80,
            60,
            graph.boxes,
            graph.labels,
            graph.label_names,
            graph.scores,
            graph.queries,
            graph.triplets,
            ["riding"],
        )
