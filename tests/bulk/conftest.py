"""A collection of 60 small images of two sizes plus 2 corrupt files, tiny models, and ways to read results
back from any layout and compare them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from tests.export.conftest import small_export  # noqa: F401 (a fixture: the export, made once per session)

from egtr import EGTRConfig
from egtr.checkpoints import save_model
from egtr.models.egtr import EGTR

SIZES = ((40, 30), (30, 40))  # (width, height): the two sizes of the collection
CORRUPT = ("broken.jpg", "empty.png")
# fast, deterministic settings: tiny images, one torch thread, batches of equal-size images
FAST = ["--size", "32", "--max-size", "48", "--threads", "1", "--batch-size", "3", "--no-progress"]
TOLERANCE = 1e-5  # on scores, between runs whose batches differ
LAYOUTS = {
    "json": [],
    "jsonl": ["--jsonl", "--shard-size", "7"],
    "parquet": ["--parquet", "--shard-size", "7"],
}


@pytest.fixture(autouse=True)
def one_torch_thread():
    """One torch thread in the test process (fast for tiny inputs, and safe to fork)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny_model(seed: int) -> EGTR:
    torch.manual_seed(seed)
    return EGTR(EGTRConfig.small(num_queries=12)).eval()


@pytest.fixture(scope="session")
def models(tmp_path_factory) -> tuple[Path, Path]:
    """Two checkpoints of the same architecture with different weights."""
    folder = tmp_path_factory.mktemp("models")
    return tuple(save_model(tiny_model(seed), folder / f"model{seed}.safetensors") for seed in (0, 1))


@pytest.fixture(scope="session")
def collection(tmp_path_factory) -> Path:
    """60 images in a small tree (two sizes, PNG and JPEG), 2 corrupt files and a text file."""
    root = tmp_path_factory.mktemp("collection") / "photos"
    rng = np.random.default_rng(0)
    for index in range(60):
        width, height = SIZES[index % 2]
        folder = root / f"part{index % 3}" / ("deep" if index % 5 == 0 else "")
        folder.mkdir(parents=True, exist_ok=True)
        suffix = ".jpg" if index % 4 == 0 else ".png"
        pixels = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"image{index:02d}{suffix}")
    (root / "part1" / CORRUPT[0]).write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (root / "part2" / CORRUPT[1]).touch()
    (root / "notes.txt").write_text("not an image")
    return root


def arguments(collection: Path, checkpoint: Path, out: Path, layout: str) -> list:
    """`egtr predict` of the collection into `out` in `layout` (see LAYOUTS), fast settings."""
    return [collection, "--checkpoint", checkpoint, "--out", out, *LAYOUTS[layout], *FAST]


@pytest.fixture(scope="session")
def uninterrupted(models, collection, tmp_path_factory) -> dict[str, dict]:
    """The results of one uninterrupted run per layout (all three the same)."""
    from tests.bulk.killing import run_killed

    results = {}
    for layout in LAYOUTS:
        out = tmp_path_factory.mktemp("uninterrupted") / layout
        assert run_killed(arguments(collection, models[0], out, layout), at=None) == 1  # 2 corrupt files
        results[layout] = read_results(out)
    assert_same_results(results["jsonl"], results["json"])
    assert_same_results(results["parquet"], results["json"])
    return results


def image_keys(collection: Path) -> set[str]:
    return {str(path) for path in collection.rglob("image*")}


def corrupt_keys(collection: Path) -> set[str]:
    return {str(path) for path in collection.rglob("*") if path.name in CORRUPT}


def read_results(out: Path) -> dict[str, dict]:
    """image -> its graph (the `egtr predict` JSON) from any layout; asserts that no image is held twice and
    that the index names exactly what the shards hold."""
    settings = json.loads((out / "run.json").read_text())["settings"]
    graphs: list[dict] = []
    if settings["layout"] == "json":
        for path in sorted(out.rglob("*.json")):
            if path.parent != out or path.stem not in ("run", "summary"):
                graphs.append(json.loads(path.read_text()))
    else:
        shards = sorted((out / "shards").glob(f"*.{settings['layout']}"))
        index = json.loads((out / "index.json").read_text())
        indexed = {entry["shard"]: entry["images"] for entry in index["shards"]}
        assert set(indexed) == {shard.name for shard in shards}
        for shard in shards:
            held = read_shard(shard)
            assert [graph["image"] for graph in held] == indexed[shard.name], shard
            graphs += held
    results = {graph["image"]: graph for graph in graphs}
    assert len(results) == len(graphs), "an image is written twice"
    return results


def read_shard(path: Path) -> list[dict]:
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in path.read_text().splitlines()]
    import pyarrow.parquet as pq

    return [{"image": row.pop("path"), **row} for row in pq.read_table(path).to_pylist()]


def assert_same_results(actual: dict[str, dict], expected: dict[str, dict]) -> None:
    """The same images, objects and triplets; scores and boxes within TOLERANCE."""
    assert sorted(actual) == sorted(expected)
    for image, graph in expected.items():
        other = actual[image]
        assert (other["width"], other["height"]) == (graph["width"], graph["height"]), image
        assert [o["label"] for o in other["objects"]] == [o["label"] for o in graph["objects"]], image
        np.testing.assert_allclose(
            [o["box"] for o in other["objects"]],
            [o["box"] for o in graph["objects"]],
            atol=1e-3,
            err_msg=image,
        )
        pairs = [(t["subject"], t["predicate"], t["object"]) for t in other["triplets"]]
        assert pairs == [(t["subject"], t["predicate"], t["object"]) for t in graph["triplets"]], image
        np.testing.assert_allclose(
            [t["score"] for t in other["triplets"]],
            [t["score"] for t in graph["triplets"]],
            atol=TOLERANCE,
            err_msg=image,
        )
        np.testing.assert_allclose(
            [o["score"] for o in other["objects"]],
            [o["score"] for o in graph["objects"]],
            atol=TOLERANCE,
            err_msg=image,
        )


def check_completed(out: Path, collection: Path, expected: dict) -> None:
    """`out` holds the `expected` results and a summary naming the corrupt files; nothing is left over."""
    assert_same_results(read_results(out), expected)
    finished = summary(out)
    assert finished["found"] == 62 and finished["done_now"] + finished["done_before"] == 60
    assert {entry["image"] for entry in finished["unreadable"]} == corrupt_keys(collection)
    assert set(expected) == image_keys(collection)
    left = [path for path in out.rglob("*") if path.name.endswith(".tmp") or path.parent.name == "index"]
    assert left == [], left  # no temporary file, every index entry merged


def summary(out: Path) -> dict:
    return json.loads((out / "summary.json").read_text())


def egtr_process(arguments: list, **options) -> subprocess.Popen:
    """`python -m egtr ARGUMENTS` as a separate process (its own session, so that its children can be
    killed with it)."""
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "egtr", *map(str, arguments)],
        env=environment,
        start_new_session=True,
        **options,
    )
