"""Small random-weight models saved as checkpoints, and tiny images in real file formats and modes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from egtr import EGTRConfig
from egtr.checkpoints import save_model
from egtr.models.egtr import EGTR

EXIF_ORIENTATION = 0x0112
# fast predictor settings for the 32-96 px test images
FAST = {"size": 32, "max_size": 64}


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tiny inputs run fastest on one thread (and stay fast when other processes load the CPU)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def small_model(seed: int = 0, **overrides) -> EGTR:
    torch.manual_seed(seed)
    return EGTR(EGTRConfig.small(**{"num_queries": 12, **overrides})).eval()


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory) -> Path:
    """A small 12-class / 6-predicate model with 12 queries, saved in the native format."""
    return save_model(small_model(), tmp_path_factory.mktemp("model") / "model.safetensors")


def random_pixels(height: int, width: int, seed: int = 0, channels: int = 3) -> np.ndarray:
    shape = (height, width, channels) if channels > 1 else (height, width)
    return np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)


def write_rgb(path: Path, width: int = 64, height: int = 48, seed: int = 0, **save_options) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(random_pixels(height, width, seed)).save(path, **save_options)
    return path


def write_with_orientation(path: Path, orientation: int, width: int = 64, height: int = 40) -> Path:
    """An image whose EXIF orientation tag asks viewers to rotate it (6: 90 degrees clockwise)."""
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = orientation
    return write_rgb(path, width, height, seed=5, exif=exif)


@pytest.fixture(scope="session")
def mode_images(tmp_path_factory) -> dict[str, Path]:
    """One file per case: JPEG, EXIF-rotated JPEG and PNG, L, RGBA, P, P with transparency, I;16, F."""
    folder = tmp_path_factory.mktemp("modes")
    palette = Image.fromarray(random_pixels(40, 56, 2)).convert("P", palette=Image.Palette.ADAPTIVE)
    transparent_palette = palette.copy()
    transparent_palette.info["transparency"] = 0
    sixteen = random_pixels(36, 52, 3, channels=1).astype(np.uint16) * 257
    images = {
        "rgb.jpg": lambda path: write_rgb(path, quality=95),
        "exif.jpg": lambda path: write_with_orientation(path, 6),
        "exif.png": lambda path: write_with_orientation(path, 8),
        "gray.png": lambda path: Image.fromarray(random_pixels(48, 32, 1, channels=1)).save(path),
        "rgba.png": lambda path: Image.fromarray(random_pixels(32, 64, 4, channels=4)).save(path),
        "palette.png": lambda path: palette.save(path),
        "palette_transparent.png": lambda path: transparent_palette.save(path, transparency=0),
        "depth16.png": lambda path: Image.fromarray(sixteen).save(path),
        "float.tif": lambda path: Image.fromarray(
            np.linspace(0, 1, 40 * 40, dtype=np.float32).reshape(40, 40)
        ).save(path),
    }
    paths = {}
    for name, write in images.items():
        write(folder / name)
        paths[name] = folder / name
    return paths
