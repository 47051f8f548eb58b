"""Shapes and colours of the synthetic world, rasterized without anti-aliasing.

A shape fills its box: its mask's tight bounding box is the whole [height, width] array, so an object's
annotated box is the full extent of the shape even where a later object hides part of it.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

SHAPES = ("square", "circle", "triangle", "diamond")
PALETTE = {
    "red": (220, 40, 40),
    "green": (40, 160, 60),
    "blue": (40, 80, 220),
    "yellow": (235, 195, 30),
    "purple": (140, 60, 180),
    "cyan": (30, 190, 200),
}
DEFAULT_COLOURS = ("red", "green", "blue")


def shape_mask(shape: str, width: int, height: int) -> np.ndarray:
    """bool [height, width]: the pixels of `shape` drawn to fill a width x height box."""
    canvas = Image.new("1", (width, height), 0)
    draw = ImageDraw.Draw(canvas)
    right, bottom = width - 1, height - 1
    if shape == "square":
        draw.rectangle((0, 0, right, bottom), fill=1)
    elif shape == "circle":
        draw.ellipse((0, 0, right, bottom), fill=1)
    elif shape == "triangle":
        draw.polygon([(0, bottom), (right, bottom), (right / 2, 0)], fill=1)
    elif shape == "diamond":
        draw.polygon([(right / 2, 0), (right, bottom / 2), (right / 2, bottom), (0, bottom / 2)], fill=1)
    else:
        raise ValueError(f"unknown shape {shape!r}; known: {', '.join(SHAPES)}")
    return np.array(canvas, dtype=bool)
