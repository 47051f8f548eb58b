"""Tiny datasets and a command runner for the training-engine tests."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

from egtr.data import write_coco_dataset
from egtr.data.synthetic.world import SyntheticWorld

SIZE = 64
# a tiny, deterministic model: no dropout, frozen norms (batch statistics would differ between 1 and 2
# images per process), few queries
TINY_MODEL = [
    "--model",
    "dropout=0",
    "--model",
    "num_queries=10",
    "--model",
    'backbone_norm="frozen"',
    "--model",
    "freeze_downsample_batchnorm=true",
    "--model",
    "encoder_layers=1",
    "--model",
    "decoder_layers=2",
]


def tiny_flags(out: Path, data: Path, steps: int) -> list[str]:
    return [
        "--dataset",
        "synthetic",
        "--data",
        str(data),
        "--out",
        str(out),
        "--max-steps",
        str(steps),
        "--train-scales",
        str(SIZE),
        "--train-max-size",
        str(SIZE),
        "--eval-size",
        str(SIZE),
        "--eval-max-size",
        str(SIZE),
        "--num-workers",
        "0",
        "--log-every",
        "1",
        *TINY_MODEL,
    ]


def write_dataset(directory: Path, train_indices: list[int], eval_count: int = 2, seed: int = 0) -> Path:
    world = SyntheticWorld(seed=seed, image_size=(SIZE, SIZE), max_objects=4)
    images = directory / "images"
    images.mkdir(parents=True, exist_ok=True)

    def records(indices):
        out = []
        for index in indices:
            image, record = world.sample(index)
            record.image_path = images / record.image_path
            image.save(record.image_path)
            out.append(record)
        return out

    last = max(train_indices) + 1
    splits = {
        "train": records(train_indices),
        "val": records(range(last, last + eval_count)),
        "test": records(range(last + eval_count, last + 2 * eval_count)),
    }
    write_coco_dataset(directory, splits, world.class_names, world.predicate_names, copy_images=False)
    return directory


def equal_structure_pair(seed: int = 0) -> list[int]:
    """Two synthetic images with the same numbers of objects and relations (>= 1)."""
    world = SyntheticWorld(seed=seed, image_size=(SIZE, SIZE), max_objects=4)
    seen: dict[tuple[int, int], int] = {}
    for index in range(200):
        record = world.sample(index)[1]
        key = (record.num_objects, record.num_relations)
        if record.num_relations and key in seen:
            return [seen[key], index]
        seen.setdefault(key, index)
    raise AssertionError("no two images with the same structure")


def run_egtr(args: list[str], timeout: float = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "egtr", *args], capture_output=True, text=True, timeout=timeout, env=env
    )


def logged(metrics_csv: Path, column: str) -> list[tuple[int, float]]:
    with metrics_csv.open() as handle:
        return [(int(row["step"]), float(row[column])) for row in csv.DictReader(handle) if row.get(column)]


@pytest.fixture
def tiny_dataset(tmp_path: Path) -> Path:
    return write_dataset(tmp_path / "data", list(range(8)))
