"""End-to-end prediction throughput: a folder of JPEG images -> scene graphs, with the full-size model.

For each setting, N images of that size are written to a temporary folder, then
`SceneGraphPredictor.iter_predict` runs over the paths: reading, decoding, EXIF/mode handling,
resizing, normalizing, the model, the official post-processing and triplet selection, all timed
(after a warm-up image). Settings: the official FPS protocol (600 x 1000 images, --size 600
--max-size 1000) and the accuracy protocol (800 x 1333 images, 800/1333). Random weights: speed does
not depend on them.

    python benchmarks/bench_predict.py --images 4
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from egtr import EGTRConfig, SceneGraphPredictor
from egtr.models.egtr import EGTR

SETTINGS = {"600x1000": (600, 1000), "800x1333": (800, 1333)}  # (height, width) = (size, max_size)


def write_images(folder: Path, count: int, height: int, width: int) -> list[Path]:
    """JPEGs with smooth structure plus noise (compressing like photos rather than pure noise)."""
    rng = np.random.default_rng(0)
    rows, columns = np.mgrid[0:height, 0:width]
    paths = []
    for index in range(count):
        phase = rng.uniform(0, 2 * np.pi, 3)
        base = np.stack([np.sin(rows / 37 + columns / 53 + p) for p in phase], axis=-1) * 80 + 128
        pixels = np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)
        path = folder / f"image_{index:03d}.jpg"
        Image.fromarray(pixels).save(path, quality=90)
        paths.append(path)
    return paths


def measure(predictor: SceneGraphPredictor, paths: list[Path]) -> tuple[float, list[float]]:
    """(images/s over the whole folder, seconds per image) after one warm-up image."""
    list(predictor.iter_predict(paths[:1]))
    stamps = [time.perf_counter()]
    for _ in predictor.iter_predict(paths):
        stamps.append(time.perf_counter())
    per_image = list(np.diff(stamps))
    return len(paths) / (stamps[-1] - stamps[0]), per_image


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=int, default=4, help="images per setting (default: %(default)s)")
    parser.add_argument("--batch-size", type=int, default=1, help="images per forward (default: %(default)s)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto (default: %(default)s)")
    parser.add_argument(
        "--preset", default="visual_genome", choices=EGTRConfig.PRESETS, help="model (default: %(default)s)"
    )
    parser.add_argument(
        "--settings",
        nargs="+",
        default=list(SETTINGS),
        choices=list(SETTINGS),
        help="image sizes to measure (default: both)",
    )
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = EGTR(EGTRConfig.preset(args.preset)).eval()
    machine = platform.processor() or platform.machine()
    print(
        f"machine: {machine}, {os.cpu_count()} CPUs, torch {torch.__version__}, threads "
        f"{torch.get_num_threads()}, load average {os.getloadavg()[0]:.2f}; model {args.preset} "
        f"(N={model.config.num_queries}), batch {args.batch_size}, device {args.device}"
    )
    with tempfile.TemporaryDirectory() as directory:
        for name in args.settings:
            height, width = SETTINGS[name]
            predictor = SceneGraphPredictor(
                model, device=args.device, size=height, max_size=width, batch_size=args.batch_size
            )
            paths = write_images(Path(directory), args.images, height, width)
            rate, per_image = measure(predictor, paths)
            print(
                f"{name} images, --size {height} --max-size {width}: {rate:.3f} images/s "
                f"(median {statistics.median(per_image):.2f} s/image over {len(paths)} images)"
            )


if __name__ == "__main__":
    main()
