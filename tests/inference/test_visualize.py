"""Drawings of scene graphs: PNGs with content, both layouts (graphviz faked by a script), edge grouping."""

import os
import stat

import numpy as np
import pytest
from PIL import Image

from egtr.inference.graph_layout import (
    dot_source,
    layout_graph,
    normalized,
    parse_plain_positions,
    spring_layout,
)
from egtr.inference.scene_graph import Triplet
from egtr.inference.visualize import draw_scene_graph, drawn_parts, object_colours

from .conftest import random_pixels
from .test_scene_graph import example_graph

PLAIN = """graph 1 4 3
node n0 1 2.5 1.2 0.5 "0: man" solid box black lightgrey
node n1 3 0.5 1.2 0.5 "1: horse" solid box black lightgrey
edge n0 n1 4 1 2.2 1.5 1.5 2.5 1 3 0.75 solid black
stop
"""


@pytest.fixture
def fake_dot(tmp_path, monkeypatch):
    """A `dot` executable on PATH that prints fixed plain output and records its input."""
    folder = tmp_path / "bin"
    folder.mkdir()
    script = folder / "dot"
    script.write_text(f"#!/bin/sh\ncat > {tmp_path / 'dot_input.txt'}\ncat <<'EOF'\n{PLAIN}EOF\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")
    return tmp_path / "dot_input.txt"


def assert_png_with_content(path, min_width=400):
    with Image.open(path) as image:
        assert image.format == "PNG" and image.width >= min_width
        colours = np.unique(np.asarray(image.convert("RGB")).reshape(-1, 3), axis=0)
        assert len(colours) > 20


@pytest.mark.parametrize("layout", ["spring", "dot"])
def test_drawing_is_a_png_with_photo_and_graph(tmp_path, fake_dot, layout):
    image = Image.fromarray(random_pixels(60, 80))
    path = draw_scene_graph(image, example_graph(), tmp_path / "out" / "g.png", layout=layout)
    assert_png_with_content(path)
    assert sorted(p.name for p in path.parent.iterdir()) == ["g.png"]  # atomic: no temporary left
    if layout == "dot":
        assert '"0: man"' in fake_dot.read_text() and "n0 -> n1" in fake_dot.read_text()


def test_graph_without_triplets_and_tall_images_still_draw(tmp_path):
    graph = example_graph()
    graph.triplets, graph.predicate_names = [], []
    path = draw_scene_graph(Image.fromarray(random_pixels(200, 30)), graph, tmp_path / "empty.png")
    assert_png_with_content(path, min_width=300)


def test_drawn_parts_group_predicates_of_a_pair_and_keep_top_edges():
    graph = example_graph()
    graph.triplets = [Triplet(0, 2, 1, 0.5), Triplet(0, 1, 1, 0.4), Triplet(1, 0, 0, 0.3)]
    graph.predicate_names = ["riding", "on", "near"]
    nodes, extras, edges = drawn_parts(graph, max_edges=2)
    assert (nodes, extras) == ([0, 1], [])
    assert edges == {(0, 1): ["riding", "on"]}
    nodes, extras, edges = drawn_parts(graph, max_edges=10)
    assert edges == {(0, 1): ["riding", "on"], (1, 0): ["near"]}
    graph.triplets, graph.predicate_names = graph.triplets[:1], graph.predicate_names[:1]
    graph.triplets[0] = Triplet(1, 2, 0, 0.5)
    assert drawn_parts(graph, max_edges=10)[:2] == ([1, 0], [])


def test_dot_plain_output_is_parsed_and_normalized():
    positions = parse_plain_positions(PLAIN, 2)
    np.testing.assert_allclose(positions, [[1, 2.5], [3, 0.5]])
    np.testing.assert_allclose(normalized(positions), [[0, 1], [1, 0]])
    with pytest.raises(ValueError, match="lacks the position"):
        parse_plain_positions(PLAIN, 3)
    assert 'n0 [label="say \\"hi\\" \\\\ bye"];' in dot_source(['say "hi" \\ bye'], [])


def test_spring_layout_spreads_nodes_deterministically():
    edges = [(0, 1), (1, 2), (2, 0), (3, 4)]
    positions = spring_layout(6, edges)
    np.testing.assert_array_equal(positions, spring_layout(6, edges))
    assert positions.min() >= 0 and positions.max() <= 1
    distances = np.linalg.norm(positions[:, None] - positions[None], axis=-1)
    assert distances[~np.eye(6, dtype=bool)].min() > 0.1
    assert distances[3, 4] < distances[3, 0]  # linked nodes end up closer


def test_layout_choice_and_graphviz_failures(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no dot anywhere
    assert layout_graph(["a", "b"], [(0, 1)], "auto").shape == (2, 2)
    with pytest.raises(OSError, match="not on PATH"):
        layout_graph(["a", "b"], [(0, 1)], "dot")
    broken = tmp_path / "dot"
    broken.write_text("#!/bin/sh\necho boom >&2\nexit 3\n")
    broken.chmod(0o755)
    with pytest.warns(UserWarning, match="dot failed .*boom"):
        assert layout_graph(["a", "b"], [(0, 1)], "auto").shape == (2, 2)
    with pytest.raises(ValueError, match="layout must be one of"):
        layout_graph(["a"], [], "circle")
    np.testing.assert_array_equal(layout_graph(["a"], [], "dot"), [[0.5, 0.5]])


def test_colours_are_distinct_for_twenty_objects():
    colours = object_colours(21)
    assert len(set(colours[:20])) == 20 and colours[20] == colours[0]
