"""How much memory a server process can hold for its requests, as a formula of its limits.

Request memory lives in three places, each with a budget or a count:
- request bodies (`max_upload_bytes_in_flight`): each body is read into one buffer of its own (an anonymous
  memory map, so only the bytes that arrived are resident, and closing it returns them at once) and never
  copied again; a body takes budget before each read, so bodies never hold more than the budget;
- connections (`max_connections` x `CONNECTION_BYTES`): a read the server holds while its body waits for
  budget, what uvicorn buffers meanwhile (it stops reading the socket above 64 KiB, and the guard makes
  one socket read at most `READ_SIZE`), the request head (h11 refuses heads above 16 KiB) and the
  connection's objects;
- decoded images (`max_decoded_bytes_in_flight`): before an image is decoded it is charged, from its
  header, what decoding and resizing it can hold at most (`decode_charge`: bytes per pixel of its format
  and mode, measured in tests/serve/test_memory_bound.py, plus the resized image and its float tensors),
  and waits while the budget is spent; once resized, its charge drops to its tensor until its batch ran.

The bound leaves out the model: its weights, its runtime and the working memory of one forward pass of
`max_batch` images, which is what `egtr predict --batch-size max_batch` holds too.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from egtr.serve.limits import ServerLimits

KIB, MIB, GIB = 1 << 10, 1 << 20, 1 << 30
READ_SIZE = 64 * KIB  # bytes of one socket read (connections.py sets it; asyncio's default is 256 KiB)
# the most bytes one ASGI receive() hands over: uvicorn pauses reading above 64 KiB, after one read
MAX_CHUNK = 64 * KIB + READ_SIZE
CONNECTION_BYTES = 2 * MAX_CHUNK + 64 * KIB  # + a request head (<= 16 KiB) and the connection's objects
# bytes per decoded pixel at the peak of reading an image (its decoded form and its RGB copy, the decoder's
# buffers), measured per format and mode with margin; WebP's decoder also holds the whole file and an RGBA
# buffer; the composite conversion of alpha and high bit depths goes through RGBA images and float arrays
DECODE_BYTES_PER_PIXEL = 9
WEBP_BYTES_PER_PIXEL = {"official": 15, "composite": 27}
COMPOSITE_ALPHA_BYTES_PER_PIXEL = 21
COMPOSITE_HIGH_DEPTH_BYTES_PER_PIXEL = 46
RESIZE_BYTES_PER_PIXEL = 52  # per resized pixel while resizing and normalizing (RGB + float32 arrays)
TENSOR_BYTES_PER_PIXEL = 12  # per resized pixel of the prepared float32 [3, H, W] tensor


def decode_bytes_per_pixel(format: str | None, mode: str, conversion: str) -> int:
    """The most bytes per pixel that reading an image of this PIL format and mode holds."""
    from egtr.data.images import ALPHA_MODES, HIGH_DEPTH_MODES  # egtr.data imports torch: not at parse time

    if format == "WEBP":
        return WEBP_BYTES_PER_PIXEL[conversion]
    if conversion == "composite" and mode in HIGH_DEPTH_MODES:
        return COMPOSITE_HIGH_DEPTH_BYTES_PER_PIXEL
    if conversion == "composite" and (mode in ALPHA_MODES or mode == "P"):  # palettes may be transparent
        return COMPOSITE_ALPHA_BYTES_PER_PIXEL
    return DECODE_BYTES_PER_PIXEL


def resized_pixels(width: int, height: int, size: int, max_size: int | None) -> int:
    """Pixels of the resized image, whichever way up the image is turned (EXIF)."""
    from egtr.data.transforms import resized_shape  # torch: not at parse time

    upright, turned = (
        resized_shape(width, height, size, max_size),
        resized_shape(height, width, size, max_size),
    )
    return max(upright[0] * upright[1], turned[0] * turned[1])


def decode_charge(
    width: int, height: int, format: str | None, mode: str, conversion: str, size: int, max_size: int | None
) -> tuple[int, int]:
    """(bytes charged while the image is decoded and resized, bytes charged once it is a tensor)."""
    resized = resized_pixels(width, height, size, max_size)
    decoding = width * height * decode_bytes_per_pixel(format, mode, conversion)
    return decoding + resized * RESIZE_BYTES_PER_PIXEL, resized * TENSOR_BYTES_PER_PIXEL


def memory_bound(limits: ServerLimits) -> dict:
    """The request memory bound of one server process: its formula, its terms and their sum, in bytes."""
    terms = {
        "bodies": limits.max_upload_bytes_in_flight,
        "connections": limits.max_connections * CONNECTION_BYTES,
        "decoded_images": limits.max_decoded_bytes_in_flight,
    }
    return {
        "bytes": sum(terms.values()),
        "terms": terms,
        "formula": f"max_upload_bytes_in_flight + max_connections x {CONNECTION_BYTES // KIB} KiB "
        "+ max_decoded_bytes_in_flight",
        "excludes": "the model: weights, runtime and the working memory of a forward pass of max_batch "
        "images (as `egtr predict --batch-size max_batch`)",
    }
