"""The per-image layout, the default for small folders: DIR/<name>.json per image, drawings beside it.

Each image's JSON is written atomically and durably (temporary file, fsync, rename): its rename commits the
image, so a JSON in DIR is always whole, and drawings, written before it, are redone under the same name if a
run dies in between. Resuming reads the `image` of every JSON already in DIR (the file's second line as
egtr writes it, `SceneGraph.to_json`: a few hundred bytes per file) — thousands of images resume in a moment,
but a collection of millions is better written with --jsonl or --parquet, whose index is read at once.

Names are those `egtr predict` always gave (sub-folders kept below a folder source, the file name otherwise,
-2, -3 on clashes, egtr.inference.output): the names of every JSON already in DIR are taken first, then the
images still to predict claim theirs in collection order. The same sources give each image the same name in
every run, whatever was committed before (a name is the first free candidate among those earlier images did
not take, and later images never took it), so a killed run's drawings are overwritten, not duplicated.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from egtr.files import write_text
from egtr.inference.predictor import PredictionResult

IMAGE_LINE = b' "image": '  # the second line of SceneGraph.to_json
LINE_LIMIT = 1 << 16
EXPLAIN_EXTRA = "explain"  # <name>.explain.png


def saved_outputs(out: Path, reserved: tuple[str, ...]) -> tuple[dict[str, str], list[str]]:
    """({image key: name} of the predictions in `out`, every JSON name in `out`), names relative to `out`
    without the suffix; hidden files and the `reserved` top-level names are not predictions."""
    committed: dict[str, str] = {}
    names = []
    if not out.is_dir():
        return committed, names
    for path in sorted(out.rglob("*.json")):
        relative = path.relative_to(out)
        hidden = any(part.startswith(".") for part in relative.parts)
        if hidden or (len(relative.parts) == 1 and path.stem in reserved) or not path.is_file():
            continue
        name = str(relative.with_suffix(""))
        names.append(name)
        image = recorded_image(path)
        if image is not None:
            committed.setdefault(image, name)
    return committed, names


def recorded_image(path: Path) -> str | None:
    """The `image` of a prediction JSON written by egtr, or None for any other file."""
    with path.open("rb") as stream:
        first, second = stream.readline(LINE_LIMIT), stream.readline(LINE_LIMIT)
    if first.rstrip(b"\r\n") != b"{" or not second.startswith(IMAGE_LINE):
        return None
    try:
        image = json.loads(second[len(IMAGE_LINE) :].rstrip(b"\r\n").rstrip(b","))
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    return image if isinstance(image, str) else None


def leftovers(out: Path) -> list[Path]:
    """Temporary files a killed run left beside its outputs (`.<name>.json.*.tmp`, `.<name>.png.*.tmp`)."""
    if not out.is_dir():
        return []
    return [
        path
        for path in out.rglob(".*.tmp")
        if path.is_file() and any(f".{suffix}." in path.name for suffix in ("json", "png"))
    ]


def write_image(out: Path, name: str, result: PredictionResult, drawing: dict | None, explain: bool) -> None:
    """One image's outputs: drawings first, then its JSON (the commit)."""
    from egtr.inference.explain import draw_explanation
    from egtr.inference.visualize import draw_scene_graph

    graph, stem = result.graph, out / name
    if drawing is not None:
        draw_scene_graph(
            result.image,
            graph,
            f"{stem}.png",
            max_edges=drawing["draw_edges"],
            layout=drawing["graph_layout"],
        )
    if explain and graph.explanation is None:
        print(
            f"note: {result.source}: no triplet at the --explain-rank ({len(graph.triplets)} triplets); "
            "nothing to explain",
            file=sys.stderr,
        )
    elif explain:
        draw_explanation(graph.explanation, f"{stem}.{EXPLAIN_EXTRA}.png", Path(result.source).name)
    write_text(f"{stem}.json", graph.to_json(), durable=True)
