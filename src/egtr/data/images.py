"""Any image input -> an 8-bit RGB PIL image, or a clear error naming the input: the one image reader of
training, evaluation, prediction and serving, so one file gives one tensor everywhere.

Inputs: a path (str or Path), the bytes of an image file (e.g. an upload) or an open binary file object
(read in place, e.g. a server's request buffer), a PIL image or a numpy array
(H x W, H x W x 1, H x W x 3 RGB or H x W x 4 RGBA; RGB order, not OpenCV's BGR). The defaults read a file
exactly as the official loader does (`Image.open(path).convert("RGB")`): pixels as stored (EXIF
orientation ignored), first frame, PIL's conversion (an alpha channel or a transparent colour is dropped,
16/32-bit values clipped at 255). Options (`ImageReading`):
- `exif=True` applies the EXIF orientation (boxes are then reported in the upright image's pixels);
- `conversion="composite"` puts transparency (RGBA, LA, PA, palette or RGB with a transparent colour)
  on white and scales high bit depths to 8 bits: 16-bit (PIL "I;16*", numpy uint16) by 255/65535; 32-bit
  integer ("I") and float ("F") data by their range: integers within 0..255 are kept, within 0..65535
  scaled as 16-bit, floats within [0, 1] multiplied by 255, anything else stretched from its minimum to
  its maximum; NaN counts as 0; bool arrays become 0/255. Numpy arrays are always read this way;
- an image above `max_pixels` (default: PIL's decompression-bomb limit `PIL.Image.MAX_IMAGE_PIXELS`) is
  refused before it is decoded;
- files and bytes may be limited to some PIL formats (`formats`, e.g. `WEB_FORMATS` for a server).
Every error is an `ImageReadError` whose `kind` says what went wrong (one of `ERROR_KINDS`).
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

HIGH_DEPTH_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I", "F")
ALPHA_MODES = ("RGBA", "RGBa", "LA", "La", "PA")
CONVERSIONS = ("official", "composite")
WEB_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF")  # PIL format names (JPEG includes MPO)
# missing/empty file, refused size, unknown or unsupported format, undecodable data, unsupported input type
ERROR_KINDS = ("missing", "empty", "too_large", "format", "corrupt", "input")


class ImageReadError(ValueError):
    """An input that cannot be turned into an image; the message starts with the input's name."""

    def __init__(self, source: str, reason: str, kind: str = "corrupt") -> None:
        if kind not in ERROR_KINDS:
            raise ValueError(f"kind must be one of {ERROR_KINDS}, got {kind!r}")
        super().__init__(f"{source}: {reason}")
        self.source, self.reason, self.kind = source, reason, kind


def source_name(image: Any, index: int) -> str:
    """A name for error messages and outputs: the path, a PIL image's file name, or '<kind index>'."""
    if isinstance(image, (str, Path)):
        return str(image)
    if isinstance(image, Image.Image):
        return getattr(image, "filename", "") or f"<image {index}>"
    if isinstance(image, (bytes, bytearray, memoryview)):
        return f"<bytes {index}>"
    if isinstance(image, io.IOBase):
        return f"<file {index}>"
    return f"<array {index}>"


def load_rgb(
    image: Any,
    name: str,
    max_pixels: int | None = None,
    exif: bool = False,
    conversion: str = "official",
    formats: Sequence[str] | None = None,
) -> Image.Image:
    """`image` (path, bytes, binary file, PIL image or numpy array) as an 8-bit RGB PIL image; ImageReadError
    if not.

    Defaults as the official loader; `exif` and `conversion` as in the module docstring. `formats` (PIL
    format names) limits what files and bytes may hold; default: any PIL can open.
    """
    _check_conversion(conversion)
    limit = Image.MAX_IMAGE_PIXELS if max_pixels is None else max_pixels
    if isinstance(image, (str, Path)):
        path = Path(image)
        if not path.is_file():
            raise ImageReadError(name, "no such file" if not path.exists() else "not a file", "missing")
        if path.stat().st_size == 0:
            raise ImageReadError(name, "empty file (0 bytes)", "empty")
        return _read_encoded(path, name, limit, exif, conversion, formats)
    if isinstance(image, (bytes, bytearray, memoryview)):
        if len(image) == 0:
            raise ImageReadError(name, "empty image data (0 bytes)", "empty")
        return _read_encoded(io.BytesIO(image), name, limit, exif, conversion, formats)
    if isinstance(image, io.IOBase):
        return _read_encoded(image, name, limit, exif, conversion, formats)
    if isinstance(image, Image.Image):
        _check_size(image.width, image.height, name, limit)
        return _decoded(lambda: _convert(_upright(image, exif), name, conversion), name)
    if isinstance(image, np.ndarray):
        return array_to_rgb(image, name)
    raise ImageReadError(
        name,
        f"unsupported input type {type(image).__name__} (use a path, bytes, a file, a PIL image or a numpy "
        "array)",
        "input",
    )


@dataclass(frozen=True)
class ImageReading:
    """How images are read (module docstring); `read(image, name)` is `load_rgb` with these options."""

    exif: bool = False
    conversion: str = "official"
    max_pixels: int | None = None

    def __post_init__(self) -> None:
        _check_conversion(self.conversion)

    def read(self, image: Any, name: str, formats: Sequence[str] | None = None) -> Image.Image:
        return load_rgb(image, name, self.max_pixels, self.exif, self.conversion, formats)


def _check_conversion(conversion: str) -> None:
    if conversion not in CONVERSIONS:
        raise ValueError(f"conversion must be one of {CONVERSIONS}, got {conversion!r}")


def _convert(image: Image.Image, name: str, conversion: str) -> Image.Image:
    if conversion == "composite":
        return to_rgb(image, name)
    try:
        return image.convert("RGB")
    except (ValueError, OSError) as error:
        raise ImageReadError(name, f"cannot convert image mode {image.mode!r} to RGB ({error})") from error


def _check_size(width: int, height: int, name: str, limit: int | None) -> None:
    if limit and width * height > limit:
        raise ImageReadError(
            name,
            f"image too large: {width} x {height} = {width * height} pixels, above the limit of {limit} "
            "(a guard against decompression bombs; raise it with --max-pixels if you trust the file)",
            "too_large",
        )


def _upright(image: Image.Image, exif: bool) -> Image.Image:
    return ImageOps.exif_transpose(image) if exif else image


def _read_encoded(
    source: Path | io.IOBase,
    name: str,
    limit: int | None,
    exif: bool,
    conversion: str,
    formats: Sequence[str] | None,
) -> Image.Image:
    """Decode an image file or in-memory file, refusing it by size before its pixels are decoded."""

    if formats is not None:
        Image.init()  # register every plugin: Image.open only preloads a few before it needs others

    def decode() -> Image.Image:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # our own limit applies
            with Image.open(source, formats=formats) as opened:
                _check_size(opened.width, opened.height, name, limit)
                opened.load()
                return _convert(_upright(opened, exif), name, conversion)

    unknown = (
        f"not an image in a supported format ({', '.join(formats)})"
        if formats is not None
        else "not an image file, or a format PIL cannot read"
    )
    return _decoded(decode, name, unknown)


def _decoded(
    decode: Callable[[], Image.Image],
    name: str,
    unknown: str = "not an image file, or a format PIL cannot read",
) -> Image.Image:
    """Run `decode`, turning PIL's many failure types into an ImageReadError naming the input."""
    try:
        return decode()
    except ImageReadError:
        raise
    except Image.DecompressionBombError as error:
        raise ImageReadError(name, f"image too large ({error})", "too_large") from error
    except UnidentifiedImageError as error:
        raise ImageReadError(name, unknown, "format") from error
    except (OSError, SyntaxError, ValueError, EOFError) as error:
        raise ImageReadError(name, f"corrupt or truncated image ({error})") from error


def to_rgb(image: Image.Image, name: str) -> Image.Image:
    """An 8-bit RGB copy of a PIL image of any mode (rules in the module docstring)."""
    if image.mode in HIGH_DEPTH_MODES:
        return Image.fromarray(to_uint8(np.asarray(image), image.mode)).convert("RGB")
    if image.mode in ALPHA_MODES or "transparency" in image.info:
        return _over_white(image.convert("RGBA"))
    try:
        return image.convert("RGB")
    except (ValueError, OSError) as error:
        raise ImageReadError(
            name, f"cannot convert image mode {image.mode!r} to RGB ({error})", "format"
        ) from error


def _over_white(rgba: Image.Image) -> Image.Image:
    background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(background, rgba).convert("RGB")


def to_uint8(values: np.ndarray, mode: str = "") -> np.ndarray:
    """Scale an integer, float or bool array (any shape) to uint8 by the module docstring's rules."""
    if values.dtype == np.uint8:
        return values
    if values.dtype == np.bool_:
        return values.astype(np.uint8) * np.uint8(255)
    data = np.nan_to_num(values.astype(np.float64), nan=0.0)
    if values.dtype == np.uint16 or mode.startswith("I;16"):
        return _round(data * (255.0 / 65535.0))
    low, high = (float(data.min()), float(data.max())) if data.size else (0.0, 0.0)
    if np.issubdtype(values.dtype, np.integer) and low >= 0 and high <= 255:
        return _round(data)
    if np.issubdtype(values.dtype, np.integer) and low >= 0 and high <= 65535:
        return _round(data * (255.0 / 65535.0))
    if np.issubdtype(values.dtype, np.floating) and low >= 0 and high <= 1:
        return _round(data * 255.0)
    return _round((data - low) * (255.0 / (high - low))) if high > low else np.zeros(data.shape, np.uint8)


def _round(data: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(data), 0, 255).astype(np.uint8)


def array_to_rgb(array: np.ndarray, name: str) -> Image.Image:
    """numpy H x W, H x W x 1, H x W x 3 (RGB) or H x W x 4 (RGBA) -> 8-bit RGB PIL image."""
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[..., 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)) or 0 in array.shape:
        raise ImageReadError(
            name,
            f"array of shape {list(array.shape)} is not an image (use H x W, H x W x 3 or H x W x 4)",
            "input",
        )
    if not (np.issubdtype(array.dtype, np.number) or array.dtype == np.bool_) or np.iscomplexobj(array):
        raise ImageReadError(name, f"array of dtype {array.dtype} is not an image", "input")
    pixels = to_uint8(np.ascontiguousarray(array))
    if pixels.ndim == 2:
        return Image.fromarray(pixels).convert("RGB")
    if pixels.shape[2] == 4:
        return _over_white(Image.fromarray(pixels))
    return Image.fromarray(pixels)
