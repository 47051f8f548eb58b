"""The synthetic world the studies run on by default: the demo's world (egtr.data.synthetic.demo_world),
written to a folder once, so `egtr analyze` of the demo model without `--data` sees the demo's own test
images."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from egtr.data.synthetic.demo_world import DEFAULT_IMAGES, IMAGE_SIZE, demo_world_exists, write_demo_world

__all__ = ["DEFAULT_IMAGES", "IMAGE_SIZE", "ensure_synthetic_data", "synthetic_training_overrides"]


def ensure_synthetic_data(folder: Path, images: int = DEFAULT_IMAGES, seed: int = 0) -> Path:
    """Write the world's first `images` images to `folder` (COCO/RelTR layout) unless already there."""
    folder = Path(folder)
    if not demo_world_exists(folder):
        print(f"generating {images} synthetic images ({IMAGE_SIZE}x{IMAGE_SIZE}) into {folder}", flush=True)
        write_demo_world(folder, images, seed=seed)
    return folder


def synthetic_training_overrides() -> dict[str, Any]:
    """TrainSettings overrides that fit the world's image size (as the demo trains it)."""
    return {
        "eval_size": IMAGE_SIZE,
        "eval_max_size": 2 * IMAGE_SIZE,
        "train_scales": [round(IMAGE_SIZE * f) for f in (0.9, 1.0, 1.1)],
        "train_max_size": 2 * IMAGE_SIZE,
        "num_workers": 0,
    }
