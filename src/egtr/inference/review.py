"""A predicted scene graph beside its ground truth, to check at a glance (the demo's drawings).

Left, the image with the boxes of the objects in the best triplets, each labelled "<id>: <name>";
right, the best triplets in rank order with their scores (two significant digits: a triplet's score, the
product of three probabilities, is often below 0.01), each marked hit (it matches a ground-truth
triplet: the same subject class, predicate and object class, and both boxes with IoU >= 0.5, as the
recall evaluator counts) or miss, and the ground-truth triplets, each marked found (hit by one of the
listed triplets) or not. Matplotlib's Agg canvas draws (no pyplot).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from egtr.boxes import iou_plus_one_pixel
from egtr.data.record import SceneGraphRecord
from egtr.figures import new_figure, save_figure
from egtr.inference.scene_graph import SceneGraph
from egtr.inference.visualize import drawn_parts, node_label, object_colours, text_colour

IOU_THRESHOLD = 0.5
HIT, MISS = "hit", "miss"
SHOWN = 8  # triplets listed


def triplet_hits(graph: SceneGraph, record: SceneGraphRecord, shown: int) -> tuple[list[bool], list[bool]]:
    """(for each of the best `shown` predicted triplets: does it match a ground-truth triplet; for each
    ground-truth triplet: is it matched by one of them)."""
    relations = np.asarray(record.relations).reshape(-1, 3)
    if len(graph.labels) == 0 or len(relations) == 0:
        return [False] * min(shown, len(graph.triplets)), [False] * len(relations)
    overlaps = iou_plus_one_pixel(graph.boxes, record.boxes) >= IOU_THRESHOLD  # [K, M]
    same_class = np.asarray(graph.labels)[:, None] == np.asarray(record.labels)[None, :]
    fits = overlaps & same_class
    predicted = []
    found = np.zeros(len(relations), dtype=bool)
    for triplet in graph.triplets[:shown]:
        hits = (
            fits[triplet.subject, relations[:, 0]]
            & fits[triplet.object, relations[:, 1]]
            & (relations[:, 2] == triplet.predicate)
        )
        predicted.append(bool(hits.any()))
        found |= hits
    return predicted, found.tolist()


def draw_review(
    image: Image.Image,
    graph: SceneGraph,
    record: SceneGraphRecord,
    class_names: list[str],
    predicate_names: list[str],
    path: str | Path,
    shown: int = SHOWN,
) -> Path:
    """Write a PNG: the image with the best triplets' boxes, and the checked lists (module docstring)."""
    from matplotlib.patches import Rectangle

    nodes, _, _ = drawn_parts(graph, shown)
    colours = dict(zip(nodes, object_colours(len(nodes))))
    predicted, found = triplet_hits(graph, record, shown)
    figure = new_figure(9.0, 4.2, dpi=110)
    photo, listing = figure.subplots(1, 2, gridspec_kw={"width_ratios": [4.0, 5.0]})
    photo.imshow(image)
    photo.set_axis_off()
    for index in nodes:
        x0, y0, x1, y1 = np.clip(graph.boxes[index], 0, [image.width, image.height] * 2)
        colour = colours[index]
        photo.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, edgecolor=colour, linewidth=2))
        photo.text(
            x0,
            y0,
            str(index),
            fontsize=8,
            color=text_colour(colour),
            va="top",
            bbox={"facecolor": colour, "edgecolor": "none", "pad": 1.0, "alpha": 0.9},
        )
    hits = sum(predicted)
    photo.set_title(f"{Path(graph.source).name}: {hits} of the best {len(predicted)} are right", fontsize=9)
    lines: list[tuple[str, str]] = [(f"best {len(predicted)} predicted triplets (score):", "black")]
    for rank, (triplet, hit) in enumerate(zip(graph.triplets[:shown], predicted), start=1):
        subject, object_ = node_label(graph, triplet.subject), node_label(graph, triplet.object)
        text = f"{rank}. {'✓' if hit else '✗'} {subject}  {graph.predicate_names[rank - 1]}  {object_}"
        lines.append((f"{text}  ({triplet.score:.2g})", "green" if hit else "firebrick"))
    lines.append(("", "black"))
    lines.append((f"ground truth ({sum(found)} of {len(found)} found above):", "black"))
    for (subject, object_, predicate), hit in zip(np.asarray(record.relations).reshape(-1, 3), found):
        names = (
            class_names[record.labels[subject]],
            predicate_names[predicate],
            class_names[record.labels[object_]],
        )
        lines.append((f"{'✓' if hit else '✗'} {'  '.join(names)}", "green" if hit else "firebrick"))
    listing.set_axis_off()
    step = 1.0 / max(len(lines), 14)
    for row, (text, colour) in enumerate(lines):
        listing.text(0.0, 1.0 - row * step, text, fontsize=8, color=colour, va="top", family="monospace")
    figure.tight_layout()
    return save_figure(figure, path)
