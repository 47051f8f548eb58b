"""The world `egtr demo` trains on, and the studies by default: an easy world for a short CPU run.

Large shapes (1/5 to 0.45 of the image side), at most 5 per image, 128 px images, the images split 80/10/10
into train/val/test (image i of the world with seed s is the same on every machine).
"""

from __future__ import annotations

from pathlib import Path

from egtr.data.synthetic.export import write_synthetic_dataset

IMAGE_SIZE = 128
OBJECT_SIZE = (0.2, 0.45)
MAX_OBJECTS = 5
DEFAULT_IMAGES = 1200


def write_demo_world(
    folder: Path, images: int = DEFAULT_IMAGES, seed: int = 0, image_size: int = IMAGE_SIZE
) -> dict[str, int]:
    """Write the world's first `images` images (square, `image_size` px) to `folder` in the COCO/RelTR
    layout; returns the images per split. `rel.json`, written last, marks a complete folder."""
    return write_synthetic_dataset(
        folder,
        images,
        seed=seed,
        image_size=(image_size, image_size),
        object_size=OBJECT_SIZE,
        max_objects=MAX_OBJECTS,
    )


def demo_world_exists(folder: Path) -> bool:
    """True when `folder` holds a completely written world (its rel.json is written last)."""
    return (Path(folder) / "rel.json").is_file()
