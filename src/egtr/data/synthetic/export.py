"""Writing the synthetic world to disk as a custom (COCO/RelTR-layout) dataset."""

from __future__ import annotations

from pathlib import Path

from egtr.data.coco_relations import IMAGE_DIR
from egtr.data.coco_writer import write_coco_dataset
from egtr.data.synthetic.world import SyntheticWorld


def split_sizes(num_images: int, val_fraction: float = 0.1, test_fraction: float = 0.1) -> dict[str, int]:
    """Images per split: val and test get round(fraction * n), at least 1 each once n >= 3; train the rest."""
    if num_images < 0:
        raise ValueError(f"num_images must be >= 0, got {num_images}")
    minimum = 1 if num_images >= 3 else 0
    val = max(minimum, round(val_fraction * num_images))
    test = max(minimum, round(test_fraction * num_images))
    if val + test > num_images:
        raise ValueError(f"val and test fractions leave no room in {num_images} images")
    return {"train": num_images - val - test, "val": val, "test": test}


def write_synthetic_dataset(
    out_dir: Path | str,
    num_images: int,
    seed: int = 0,
    image_size: tuple[int, int] = (192, 192),
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
    **world_options,
) -> dict[str, int]:
    """Write images 0..n-1 of `SyntheticWorld(seed, image_size, **world_options)` to `out_dir` in the
    COCO/RelTR layout (PNG images): train gets the first images, then val, then test.

    Returns the number of images per split.
    """
    out_dir = Path(out_dir)
    world = SyntheticWorld(seed=seed, image_size=image_size, **world_options)
    image_dir = out_dir / IMAGE_DIR
    image_dir.mkdir(parents=True, exist_ok=True)
    sizes = split_sizes(num_images, val_fraction, test_fraction)
    splits, start = {}, 0
    for split, count in sizes.items():
        records = []
        for index in range(start, start + count):
            image, record = world.sample(index)
            record.image_path = image_dir / record.image_path
            image.save(record.image_path)
            records.append(record)
        splits[split] = records
        start += count
    write_coco_dataset(out_dir, splits, world.class_names, world.predicate_names, copy_images=False)
    return sizes
