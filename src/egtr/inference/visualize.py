"""A picture of a scene graph: the photo with labelled boxes (left) and the graph itself (right).

Only the best `max_edges` triplets are drawn, with the objects they involve (listed objects that take part
in no triplet are boxed on the photo only); each object keeps one colour in both panels. Nodes read
"<id>: <name>" as the box labels do, so the JSON, the photo and the graph point at each other. Predicates
of the same ordered pair share one arrow. Boxes are clipped to the image for drawing only. Matplotlib's
Agg canvas draws (no pyplot, so a notebook's backend is left alone); node positions come from graphviz
`dot` when installed, else from a spring layout (graph_layout.py).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from egtr.figures import new_figure, save_figure
from egtr.inference.graph_layout import layout_graph
from egtr.inference.scene_graph import SceneGraph

EDGE_CURVATURE = 0.2  # arc3 "rad": opposite edges between two nodes bend apart
PANEL_HEIGHT_IN = 7.0
LABEL_ROOM = 0.05  # boxes starting this close to the top (fraction of the height) get their label inside


def object_colours(count: int) -> list[tuple[float, float, float]]:
    """`count` RGB colours, the first 20 all distinct (tab20: dark shades first, then light)."""
    from matplotlib import colormaps

    palette = colormaps["tab20"].colors
    order = list(range(0, 20, 2)) + list(range(1, 20, 2))
    return [tuple(palette[order[index % 20]]) for index in range(count)]


def text_colour(background: tuple[float, float, float]) -> str:
    red, green, blue = background[:3]
    return "black" if 0.299 * red + 0.587 * green + 0.114 * blue > 0.55 else "white"


def drawn_parts(
    graph: SceneGraph, max_edges: int
) -> tuple[list[int], list[int], dict[tuple[int, int], list[str]]]:
    """What to draw for the best `max_edges` triplets: graph nodes (object ids, in order), extra objects
    (listed but in no triplet: boxed on the photo only) and edges {(subject, object): predicate names}."""
    edges: dict[tuple[int, int], list[str]] = {}
    nodes: list[int] = []
    for triplet, name in zip(graph.triplets[:max_edges], graph.predicate_names[:max_edges]):
        edges.setdefault((triplet.subject, triplet.object), []).append(name)
        nodes += [index for index in (triplet.subject, triplet.object) if index not in nodes]
    in_triplets = {index for t in graph.triplets for index in (t.subject, t.object)}
    extras = [index for index in range(len(graph.labels)) if index not in in_triplets]
    return nodes, extras, edges


def node_label(graph: SceneGraph, index: int) -> str:
    return f"{index}: {graph.label_names[index]}"


def draw_scene_graph(
    image: Image.Image, graph: SceneGraph, path: str | Path, max_edges: int = 10, layout: str = "auto"
) -> Path:
    """Write a PNG with the photo and boxes beside the graph of the best `max_edges` triplets."""
    nodes, extras, edges = drawn_parts(graph, max_edges)
    colours = dict(zip(nodes + extras, object_colours(len(nodes) + len(extras))))
    photo_width = float(np.clip(PANEL_HEIGHT_IN * image.width / max(image.height, 1), 3.0, 14.0))
    figure = new_figure(photo_width + PANEL_HEIGHT_IN, PANEL_HEIGHT_IN + 0.6)
    photo, drawing = figure.subplots(1, 2, gridspec_kw={"width_ratios": [photo_width, PANEL_HEIGHT_IN]})
    shown = min(max_edges, len(graph.triplets))
    figure.suptitle(f"{Path(graph.source).name}: best {shown} of {len(graph.triplets)} triplets", fontsize=11)
    _draw_photo(photo, image, graph, nodes + extras, colours)
    _prepare_graph_axes(drawing)
    figure.tight_layout()  # before the graph: its arrows are fitted to the final node boxes
    _draw_graph(figure, drawing, graph, nodes, edges, colours, layout)
    return save_figure(figure, path)


def _draw_photo(axes, image: Image.Image, graph: SceneGraph, nodes: list[int], colours: dict) -> None:
    from matplotlib.patches import Rectangle

    axes.imshow(image)
    axes.set_axis_off()
    for index in nodes:
        x0, y0, x1, y1 = np.clip(graph.boxes[index], 0, [image.width, image.height] * 2)
        colour = colours[index]
        axes.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, edgecolor=colour, linewidth=2.2))
        axes.text(
            x0,
            y0,
            f"{node_label(graph, index)} {graph.scores[index]:.2f}",
            fontsize=8,
            color=text_colour(colour),
            va="bottom" if y0 > LABEL_ROOM * image.height else "top",  # inside the box at the top edge
            bbox={"facecolor": colour, "edgecolor": "none", "pad": 1.5, "alpha": 0.9},
            clip_on=True,
        )


def _prepare_graph_axes(axes) -> None:
    axes.set_xlim(-0.12, 1.12)
    axes.set_ylim(-0.08, 1.08)
    axes.set_aspect("equal")
    axes.set_axis_off()


def _draw_graph(figure, axes, graph: SceneGraph, nodes, edges, colours, layout: str) -> None:
    from matplotlib.patches import FancyArrowPatch, Rectangle

    if not nodes:
        axes.text(0.5, 0.5, "no triplets", ha="center", va="center", fontsize=12, color="grey")
        return
    slot = {index: position for position, index in enumerate(nodes)}
    labels = [node_label(graph, index) for index in nodes]
    positions = layout_graph(labels, [(slot[a], slot[b]) for a, b in edges], layout) * 0.9 + 0.05
    texts = [
        axes.text(
            x,
            y,
            label,
            ha="center",
            va="center",
            fontsize=10,
            color=text_colour(colours[index]),
            bbox={"boxstyle": "round,pad=0.35", "facecolor": colours[index], "edgecolor": "black"},
            zorder=5,  # above arrows and edge labels
        )
        for (x, y), label, index in zip(positions, labels, nodes)
    ]
    figure.canvas.draw()  # lay the node boxes out once to know where arrows must stop
    renderer = figure.canvas.get_renderer()
    to_data = axes.transData.inverted()
    outlines = []
    for text in texts:
        (left, bottom), (right, top) = to_data.transform(text.get_bbox_patch().get_window_extent(renderer))
        outline = Rectangle((left, bottom), right - left, top - bottom, visible=False)
        outlines.append(axes.add_patch(outline))
    for (a, b), names in edges.items():
        start, end = positions[slot[a]], positions[slot[b]]
        axes.add_patch(
            FancyArrowPatch(
                start,
                end,
                patchA=outlines[slot[a]],
                patchB=outlines[slot[b]],
                arrowstyle="-|>",
                mutation_scale=14,
                connectionstyle=f"arc3,rad={EDGE_CURVATURE}",
                color=colours[a],
                linewidth=1.6,
                zorder=2,
            )
        )
        dx, dy = end - start
        middle = (start + end) / 2 + 0.5 * EDGE_CURVATURE * np.array([dy, -dx])  # the arc's midpoint
        axes.text(
            *middle,
            ", ".join(names),
            ha="center",
            va="center",
            fontsize=8,
            color=colours[a],
            bbox={"boxstyle": "round,pad=0.2", "facecolor": "white", "edgecolor": "none", "alpha": 0.9},
            zorder=4,
        )
