"""Throughput of the data pipeline on one CPU process: synthetic-world generation, and dataset items
through the training transform (decode, flip, multi-scale resize, normalize) plus batching.

    python benchmarks/bench_data_pipeline.py --images 200 --size 192
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path

import torch

from egtr.data import load_dataset
from egtr.data.collate import collate
from egtr.data.dataset import SceneGraphDataset, SyntheticDataset
from egtr.data.synthetic import SyntheticWorld, write_synthetic_dataset
from egtr.data.transforms import train_transform


def per_second(count: int, action) -> float:
    start = time.perf_counter()
    action()
    return count / (time.perf_counter() - start)


def batches(dataset, batch_size: int) -> None:
    for start in range(0, len(dataset), batch_size):
        collate([dataset[i] for i in range(start, min(start + batch_size, len(dataset)))])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--images", type=int, default=200, help="images per measurement (default: %(default)s)"
    )
    parser.add_argument("--size", type=int, default=192, help="synthetic image side (default: %(default)s)")
    parser.add_argument("--batch", type=int, default=8, help="batch size (default: %(default)s)")
    args = parser.parse_args()
    torch.set_num_threads(1)  # as in a DataLoader worker
    world = SyntheticWorld(seed=0, image_size=(args.size, args.size))
    small = train_transform(scales=(160, 176, 192, 208, 224), max_size=400, mid_scales=(128, 144, 160))
    official = train_transform()
    machine = platform.processor() or platform.machine()
    print(f"machine: {machine}, python {platform.python_version()}, 1 process, torch threads 1")
    rate = per_second(args.images, lambda: [world.sample(i) for i in range(args.images)])
    print(f"synthetic world {args.size}x{args.size}: sample {rate:.0f} images/s")
    with tempfile.TemporaryDirectory() as directory:
        root = Path(directory)
        rate = per_second(
            args.images, lambda: write_synthetic_dataset(root, args.images, image_size=(args.size,) * 2)
        )
        print(f"write synthetic dataset (PNG): {rate:.0f} images/s")
        records = load_dataset(root, "train")
        count = len(records)
        for name, transform in (("demo scales 160-224", small), ("official scales 480-800/1333", official)):
            rate = per_second(count, lambda t=transform: batches(SceneGraphDataset(records, t), args.batch))
            print(f"files -> batches, {name}: {rate:.0f} images/s")
        on_the_fly = SyntheticDataset(world, args.images, small)
        rate = per_second(args.images, lambda: batches(on_the_fly, args.batch))
        print(f"on-the-fly synthetic -> batches, demo scales: {rate:.0f} images/s")


if __name__ == "__main__":
    main()
