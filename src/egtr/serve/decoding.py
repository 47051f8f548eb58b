"""Decoding uploads within a budget of decoded-image memory, on a few threads of their own.

An upload's image header is read first (`peek`, in place: PIL reads the size and mode without decoding),
which gives what decoding and resizing it can hold at most (`memory_bound.decode_charge`). The image
waits, first come first served, until that much of `max_decoded_bytes_in_flight` is free; one that alone
needs more is refused (413). Then it is read by the predictor's image reading (`ImageReading`, formats
and pixel limit as `egtr predict`), resized and normalized by the predictor, and its charge drops to its
float tensor, which stays charged until its batch has run. The prepared image keeps only the original's
size, which is all the graph needs: the decoded original is freed at once, and after a large image the
C heap's free memory is handed back to the system (`trim_freed_memory`) before the budget is: freed
blocks kept by one decoding thread's allocator arena would otherwise add to the next image's.

Decoding runs on a few threads of its own: a bounded, stable set of threads keeps the allocator's
per-thread arenas few, so memory stays flat under load.
"""

from __future__ import annotations

import asyncio
import warnings
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import NamedTuple

from PIL import Image

from egtr.data.images import WEB_FORMATS, ImageReadError
from egtr.inference.predictor import PreparedImage, SceneGraphPredictor
from egtr.memory import trim_freed_memory
from egtr.serve.errors import ApiError, busy, image_error
from egtr.serve.limits import ServerLimits, format_bytes
from egtr.serve.memory_bound import decode_charge
from egtr.serve.uploads import Body

TRIM_BYTES = 32 << 20  # after decoding an image charged this much, the freed heap is returned at once


class ImageSize(NamedTuple):
    """What a prepared image keeps of its original: the graph reports boxes in its pixels."""

    width: int
    height: int


class Header(NamedTuple):
    width: int
    height: int
    format: str | None
    mode: str


class FifoBudget:
    """`limit` units shared first come, first served (a large request is not overtaken by small ones)."""

    def __init__(self, limit: int) -> None:
        self.limit, self.held = limit, 0
        self._queue: deque[tuple[int, asyncio.Future]] = deque()

    async def acquire(self, count: int) -> None:
        if count > self.limit:
            raise ValueError(f"{count} is above the whole budget of {self.limit}")
        if not self._queue and self.held + count <= self.limit:
            self.held += count
            return
        grant = asyncio.get_running_loop().create_future()
        self._queue.append((count, grant))
        try:
            await grant
        except asyncio.CancelledError:
            if grant.done() and not grant.cancelled():  # granted as it was cancelled: give it back
                self.release(count)
            else:
                self._queue.remove((count, grant))
                self._grant()
            raise

    def release(self, count: int) -> None:
        self.held -= count
        self._grant()

    def _grant(self) -> None:
        while self._queue and self.held + self._queue[0][0] <= self.limit:
            count, grant = self._queue.popleft()
            if not grant.done():
                self.held += count
                grant.set_result(None)

    def report(self) -> dict:
        return {"decoded_bytes_in_flight": self.held, "images_waiting_to_decode": len(self._queue)}


def peek(body: Body, start: int, end: int) -> Header | None:
    """Size, format and mode from the image's header (None when PIL cannot open it: reading says why)."""
    with body.file(start, end) as file, warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            with Image.open(file, formats=WEB_FORMATS) as image:
                return Header(image.width, image.height, image.format, image.mode)
        except Exception:  # unknown format, corrupt header, decompression bomb: reading gives the error
            return None


class Decoder:
    """Uploaded bodies -> prepared images for the batcher, within the decoded-image budget."""

    def __init__(self, predictor: SceneGraphPredictor, limits: ServerLimits) -> None:
        self.predictor, self.limits = predictor, limits
        self.reading = replace(predictor.reading, max_pixels=limits.max_pixels)
        self.budget = FifoBudget(limits.max_decoded_bytes_in_flight)
        self.pool = ThreadPoolExecutor(limits.decoders, thread_name_prefix="egtr-decode")

    def charge(self, header: Header | None) -> tuple[int, int]:
        """(bytes while decoding, bytes as a tensor); nothing for what reading refuses before decoding."""
        if header is None or header.width * header.height > self.limits.max_pixels:
            return 0, 0
        size, max_size = self.predictor.size, self.predictor.max_size
        conversion = self.reading.conversion
        return decode_charge(
            header.width, header.height, header.format, header.mode, conversion, size, max_size
        )

    async def prepare(self, body: Body, start: int, end: int, name: str, timeout_s: float):
        """(the prepared image, the bytes its tensor keeps charged: release them when its batch has run);
        frees the body once decoded. ApiError: 413 above the budget, 503 no budget within `timeout_s`,
        4xx for a bad image."""
        loop = asyncio.get_running_loop()
        header = await loop.run_in_executor(self.pool, peek, body, start, end)
        decoding, tensor = self.charge(header)
        if decoding > self.budget.limit:
            raise ApiError(
                413,
                f"{name}: decoding this {header.width} x {header.height} {header.format} image "
                f"({header.mode}) needs up to {format_bytes(decoding)}, above the server's budget for "
                f"decoded images of {format_bytes(self.budget.limit)} (--max-decoded-bytes-in-flight)",
            )
        try:
            await asyncio.wait_for(self.budget.acquire(decoding), timeout_s)
        except asyncio.TimeoutError as error:
            raise busy(f"the server is busy decoding other images (waited {timeout_s:g} s); retry") from error
        try:
            prepared = await loop.run_in_executor(self.pool, self._prepare, body, start, end, name, decoding)
        except BaseException:
            self.budget.release(decoding)
            raise
        finally:
            body.close()
        self.budget.release(decoding - tensor)
        return prepared, tensor

    def _prepare(self, body: Body, start: int, end: int, name: str, charge: int) -> PreparedImage:
        try:
            with body.file(start, end) as file:
                image = self.reading.read(file, name, WEB_FORMATS)
            prepared = self.predictor.preprocess(image, name)
            return replace(prepared, image=ImageSize(image.width, image.height))
        except ImageReadError as error:
            raise image_error(error) from error
        finally:
            if charge >= TRIM_BYTES:  # the freed image goes back to the system before its budget does
                image = None
                trim_freed_memory()

    def shutdown(self) -> None:
        self.pool.shutdown(wait=True)
