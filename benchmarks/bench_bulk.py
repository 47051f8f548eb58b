"""Labelling a collection with `egtr predict`: images/s in 1 process and with `--devices 2`; resuming's cost.

    python benchmarks/bench_bulk.py                        # every number of the BENCHMARKS.md table
    python benchmarks/bench_bulk.py --photos 10 --skip 2000  # a quicker look

1. The small config (random weights) on `--small-images` generated photo-like JPEGs of 320 x 240 at its
   demo sizes (160 / 240), and the Visual Genome preset (random weights) on `--photos` photos of 1333 x 800 at
   800 / 1333: the real command, `python -m egtr predict FOLDER --jsonl` in its own process(es), with one
   process (torch's default threads: one per core), and with `--devices 2` (two CPU processes, Lightning's
   DDP over gloo, the cores divided between them); for the small config also one process with one thread.
   images/s is the command's own figure (the images of all processes over the prediction loop's time,
   loading and process start excluded); the whole command's wall time is given beside it.
2. Resuming: `--skip` tiny images already committed in an output folder (shards of 1000 for --jsonl and
   --parquet, one JSON per image for the per-image layout, each a copy of a real graph), and the command run
   again: nothing is left to predict. The table gives the command's `resume_seconds` (reading what the
   folder holds and planning what is left), the time to find the images of the folder source, and the whole
   command's wall time against the same command on a folder of 1 committed image (start-up, model loading).
Photos are the smooth-waves-plus-noise JPEGs of bench_predict.py. Prints the machine (egtr.hardware.describe)
and the load average before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from bench_backends import SRC, prepare
from bench_predict import run_predict, write_photos

SMALL = {"preset": "small", "size": 160, "max_size": 240, "photo": (240, 320)}  # photo: (height, width)
VISUAL_GENOME = {"preset": "visual_genome", "size": 800, "max_size": 1333, "photo": (800, 1333)}
LAYOUTS = {"jsonl": ["--jsonl"], "parquet": ["--parquet"], "json (per image)": []}


def environment() -> dict:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}


def predict_command(folder: Path, checkpoint: Path, out: Path, setting: dict, extra: list[str]) -> list[str]:
    command = [sys.executable, "-m", "egtr", "predict", str(folder), "--checkpoint", str(checkpoint)]
    command += ["--out", str(out), "--size", str(setting["size"]), "--max-size", str(setting["max_size"])]
    return [*command, "--json", "--no-progress", *extra]


RUNS = {
    "1 process": [],
    "1 process, --threads 1": ["--threads", "1"],  # what each of the two processes below has
    "--devices 2": ["--devices", "2"],
}


def throughput(work: Path, setting: dict, count: int, batch_size: int, runs: tuple[str, ...]) -> list[dict]:
    """The `runs` (RUNS) on `count` photos of `setting`."""
    folder = work / setting["preset"]
    folder.mkdir()
    prepare(folder, setting["preset"], set())
    write_photos(folder / "photos", count, *setting["photo"])
    rows = []
    for label in runs:
        extra = RUNS[label]
        out = folder / f"out-{len(rows)}"
        command = predict_command(folder / "photos", folder / "model.safetensors", out, setting, extra)
        command += ["--jsonl", "--batch-size", str(batch_size)]
        summary, seconds, _ = run_predict(command, environment())
        assert summary["done_now"] == count, summary
        rows.append(
            {
                "preset": setting["preset"],
                "images": count,
                "run": label,
                "images_per_second": summary["images_per_second"],
                "wall_seconds": seconds,
                "processes": summary["processes"],
            }
        )
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    return rows


def tiny_images(folder: Path, count: int) -> None:
    folder.mkdir(parents=True)
    pixels = np.random.default_rng(0).integers(0, 256, (24, 32, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(folder / "000000.png")
    for index in range(1, count):
        shutil.copyfile(folder / "000000.png", folder / f"{index:06d}.png")


def commit_all(out: Path, layout: str, folder: Path, graph: dict) -> None:
    """Mark every image of `folder` committed in `out`, as a finished run would have (real graph, copied)."""
    from egtr.bulk.index import ShardIndex
    from egtr.bulk.shard_formats import SHARD_FORMATS
    from egtr.bulk.sources import find_collection
    from egtr.files import write_text
    from egtr.inference.scene_graph import SceneGraph

    images = find_collection([folder]).images
    if layout == "json (per image)":
        for image in images:
            write_text(
                out / f"{image.relative_name.with_suffix('')}.json",
                SceneGraph.from_dict({**graph, "image": image.key}).to_json(),
            )
        return
    index = ShardIndex(out, SHARD_FORMATS[layout.split()[0]])
    for start in range(0, len(images), 1000):
        chunk = images[start : start + 1000]
        index.commit(f"r00000-{start // 1000 + 10:06d}", [{**graph, "image": image.key} for image in chunk])
    index.merge()


def resuming(work: Path, skip: int) -> list[dict]:
    """The cost of starting again on `skip` committed images, per layout."""
    from egtr.bulk.sources import find_collection

    folder = work / "resume"
    folder.mkdir()
    prepare(folder, "small", set())
    tiny_images(folder / "images", skip)
    (folder / "one").mkdir()
    shutil.copy(folder / "images" / "000000.png", folder / "one" / "first.png")
    started = time.perf_counter()
    assert len(find_collection([folder / "images"]).images) == skip
    finding = time.perf_counter() - started
    setting = {"size": 32, "max_size": 48}
    rows = []
    for layout, flags in LAYOUTS.items():
        out = folder / f"out-{len(rows)}"
        checkpoint = folder / "model.safetensors"
        first, _, _ = run_predict(
            predict_command(folder / "one", checkpoint, out, setting, flags), environment()
        )
        assert first["done_now"] == 1
        graph = read_one_graph(out, layout)
        baseline, baseline_seconds, _ = run_predict(
            predict_command(folder / "one", checkpoint, out, setting, flags), environment()
        )
        assert baseline["done_before"] == 1
        commit_all(out, layout, folder / "images", graph)
        summary, seconds, _ = run_predict(
            predict_command(folder / "images", checkpoint, out, setting, flags), environment()
        )
        assert (summary["found"], summary["done_before"], summary["done_now"]) == (skip, skip, 0), summary
        rows.append(
            {
                "layout": layout,
                "committed": skip,
                "resume_seconds": summary["resume_seconds"],
                "finding_seconds": finding,
                "wall_seconds": seconds,
                "baseline_wall_seconds": baseline_seconds,
            }
        )
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    return rows


def read_one_graph(out: Path, layout: str) -> dict:
    if layout == "json (per image)":
        return json.loads((out / "first.json").read_text())
    shard = next((out / "shards").iterdir())
    if shard.suffix == ".jsonl":
        return json.loads(shard.read_text().splitlines()[0])
    import pyarrow.parquet as pq

    row = pq.read_table(shard).to_pylist()[0]
    return {"image": row.pop("path"), **row}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--small-images", type=int, default=500, help="(default: %(default)s)")
    parser.add_argument("--photos", type=int, default=50, help="Visual Genome photos (default: %(default)s)")
    parser.add_argument("--skip", type=int, default=10_000, help="committed images (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=1, help="(default: %(default)s)")
    args = parser.parse_args()
    from egtr.hardware import describe

    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="egtr-bench-bulk-") as directory:
        work = Path(directory)
        speed = throughput(work, SMALL, args.small_images, args.batch_size, tuple(RUNS))
        speed += throughput(work, VISUAL_GENOME, args.photos, args.batch_size, ("1 process", "--devices 2"))
        resume = resuming(work, args.skip)
    load_after = os.getloadavg()
    print(describe())
    print(f"load average (1, 5, 15 min): {load_before} before, {load_after} after")
    print(f"--batch-size {args.batch_size}, random weights, --jsonl")
    print("| preset | images | processes | images/s | whole command |")
    print("|---|---:|---|---:|---:|")
    for row in speed:
        print(
            f"| {row['preset']} | {row['images']} | {row['run']} | {row['images_per_second']:.2f} | "
            f"{row['wall_seconds']:.0f} s |"
        )
    print()
    print(
        "| layout | committed images | resume_seconds | finding the images | whole command | same, 1 image |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for row in resume:
        print(
            f"| {row['layout']} | {row['committed']} | {row['resume_seconds']:.2f} s | "
            f"{row['finding_seconds']:.2f} s | {row['wall_seconds']:.1f} s | "
            f"{row['baseline_wall_seconds']:.1f} s |"
        )


if __name__ == "__main__":
    main()
