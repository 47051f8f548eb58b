"""Indexing speed of a Visual-Genome-sized COCO/RelTR-layout dataset (annotations only, no image files).

Generates N images of random annotations with integer pixel boxes (as in VG; about VG150's density by
default), writes them with the library's writer, then times `load_dataset` (JSON parsing, grouping, index
validation) and `check_dataset` without the image files.

    python benchmarks/bench_data_index.py --images 100000
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path

import numpy as np

from egtr.data import SceneGraphRecord, load_dataset, write_coco_dataset
from egtr.data.check import check_dataset


def random_records(
    root: Path, count: int, objects: float, relations: float, seed: int
) -> list[SceneGraphRecord]:
    rng = np.random.default_rng(seed)
    records = []
    for index in range(count):
        width, height = int(rng.integers(300, 1025)), int(rng.integers(300, 1025))
        num_objects = max(2, int(rng.poisson(objects)))
        corners = rng.uniform(0, 1, (num_objects, 2, 2)) * [width, height]
        boxes = np.concatenate((corners.min(1), corners.max(1) + 1), axis=1).clip(0, [width, height] * 2)
        num_relations = int(rng.poisson(relations))
        pairs = rng.integers(0, num_objects, (num_relations, 2))
        records.append(
            SceneGraphRecord(
                str(index + 1),
                root / "images" / f"{index + 1}.jpg",
                width,
                height,
                boxes.round(),
                rng.integers(0, 150, num_objects),
                np.column_stack((pairs, rng.integers(0, 50, num_relations))),
            )
        )
    return records


def timed(action):
    """(result, (wall seconds, CPU seconds of this process)); CPU time is robust to a busy machine."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = action()
    return result, (time.perf_counter() - wall, time.process_time() - cpu)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--images", type=int, default=100_000, help="images in the split (default: %(default)s)"
    )
    parser.add_argument(
        "--objects", type=float, default=11.5, help="mean boxes per image (default: %(default)s)"
    )
    parser.add_argument(
        "--relations", type=float, default=6.0, help="mean relations per image (default: %(default)s)"
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed (default: %(default)s)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        root = Path(directory)
        records, generate = timed(
            lambda: random_records(root, args.images, args.objects, args.relations, args.seed)
        )
        names = [f"class{i}" for i in range(150)], [f"predicate{i}" for i in range(50)]
        _, write = timed(lambda: write_coco_dataset(root, {"train": records}, *names, copy_images=False))
        size_mb = (root / "train.json").stat().st_size / 1e6 + (root / "rel.json").stat().st_size / 1e6
        loaded, load = timed(lambda: load_dataset(root, "train"))
        report, check = timed(lambda: check_dataset(root, images=False))
    boxes = sum(r.num_objects for r in loaded.records)
    relations = sum(r.num_relations for r in loaded.records)
    print(f"machine: {platform.processor() or platform.machine()}, python {platform.python_version()}")
    print(f"{len(loaded.records)} images, {boxes} boxes, {relations} relations, {size_mb:.0f} MB of JSON")
    print(f"{'step':<20} {'wall s':>7} {'cpu s':>7}")
    for name, (wall, cpu) in (
        ("generate records", generate),
        ("write (COCO layout)", write),
        ("load_dataset", load),
        ("check (no images)", check),
    ):
        print(f"{name:<20} {wall:7.2f} {cpu:7.2f}")
    print(f"check found {len(report.problems)} problems (random boxes can be empty)")


if __name__ == "__main__":
    main()
