"""The synthetic world the studies run on by default: the demo's easy world, written to a folder once.

Same world as `egtr demo` (seed 0, 128 px, shapes 1/5 to 0.45 of the side, at most 5 per image, 80/10/10
split of the images), so `egtr analyze` of the demo model without `--data` sees the demo's own test images.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from egtr.data.synthetic.export import write_synthetic_dataset

IMAGE_SIZE = 128
OBJECT_SIZE = (0.2, 0.45)
MAX_OBJECTS = 5
DEFAULT_IMAGES = 1200


def ensure_synthetic_data(folder: Path, images: int = DEFAULT_IMAGES, seed: int = 0) -> Path:
    """Write the world's first `images` images to `folder` (COCO/RelTR layout) unless already there."""
    folder = Path(folder)
    if not (folder / "rel.json").is_file():  # rel.json is written last: its presence means complete
        print(f"generating {images} synthetic images ({IMAGE_SIZE}x{IMAGE_SIZE}) into {folder}", flush=True)
        write_synthetic_dataset(
            folder,
            images,
            seed=seed,
            image_size=(IMAGE_SIZE, IMAGE_SIZE),
            object_size=OBJECT_SIZE,
            max_objects=MAX_OBJECTS,
        )
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
