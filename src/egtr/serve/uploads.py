"""The image of a request: its body read into one buffer within the limits, then the file it carries.

A body is either the raw bytes of an image file (any content type but multipart, e.g. `image/jpeg` or
`application/octet-stream`) or `multipart/form-data` with exactly one file part (the page and
`curl -F image=@photo.jpg` send this). The format is decided by the bytes, not by the content type.

The body is copied once, from the server's reads into a `Body` (an anonymous memory map of the declared
length: only the bytes that arrived are resident); the multipart file part is found in place
(`multipart_file`, offsets into that buffer) and decoded from it through a file object (`Body.file`), so
neither joining chunks nor parsing the form copies it again. Each read is charged to the `UploadBudget`
(upload_budget.py). Its deadline grows with what arrived: the body must be complete
within `body_timeout_s + bytes so far / min_upload_rate` of its start (time spent waiting for budget does
not count), and is dropped when it sends nothing for `max_stall_s` while other bodies wait for budget;
either way it is answered 408 and its connection is closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import mmap

from python_multipart.multipart import parse_options_header
from starlette.requests import Request

from egtr.serve.errors import ApiError
from egtr.serve.limits import ServerLimits, format_bytes
from egtr.serve.upload_budget import UploadBudget

RAW_UPLOAD_NAME = "upload"  # the graph's "image" field for a raw-bytes body
MAX_NAME_LENGTH = 255
MAX_PARTS = 20  # form fields of a multipart body
MAX_PART_HEAD = 16 * 1024  # bytes of one part's headers
CLOSE = {"Connection": "close"}  # an answer before the whole body was read ends the connection


class BodyFile(io.RawIOBase):
    """A read-only, seekable file over a memoryview: what an image decoder reads, without a copy."""

    def __init__(self, view: memoryview) -> None:
        self._view, self._position = view, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        count = max(0, min(len(buffer), len(self._view) - self._position))
        buffer[:count] = self._view[self._position : self._position + count]
        self._position += count
        return count

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: len(self._view)}[whence]
        if base + offset < 0:
            raise OSError(f"negative seek position {base + offset}")
        self._position = base + offset
        return self._position

    def tell(self) -> int:
        return self._position

    def close(self) -> None:
        self._view.release()
        super().close()


class Body:
    """A request body: `size` bytes in an anonymous memory map of `capacity`, charged to an upload budget."""

    def __init__(self, capacity: int, budget: UploadBudget) -> None:
        self.buffer = mmap.mmap(-1, max(capacity, 1), flags=mmap.MAP_PRIVATE)
        self.capacity, self.size = capacity, 0
        self.budget, self.ticket = budget, budget.open()

    def append(self, chunk: bytes) -> None:
        self.buffer[self.size : self.size + len(chunk)] = chunk
        self.size += len(chunk)

    def file(self, start: int = 0, end: int | None = None) -> io.BufferedReader:
        """A file object reading bytes start..end of the body in place (close it when done)."""
        view = memoryview(self.buffer)[start : self.size if end is None else end]
        return io.BufferedReader(BodyFile(view))

    def close(self) -> None:
        """Free the buffer and its budget (idempotent). A file still open on it (a decoding thread whose
        request was given up) keeps the buffer until it is closed."""
        self.budget.close(self.ticket)
        with contextlib.suppress(BufferError):
            self.buffer.close()


async def read_body(request: Request, limits: ServerLimits, budget: UploadBudget) -> Body:
    """The whole body; 413 above `max_body_bytes` (from Content-Length when sent, else while reading), 408
    when it arrives slower than the limits allow, 400 when empty or the client went away."""
    declared = request.headers.get("content-length")
    length = int(declared) if declared is not None and declared.strip().isdigit() else None
    if length is not None and length > limits.max_body_bytes:
        raise ApiError(
            413, f"request body of {length} bytes is above the limit of {limits.max_body_bytes} bytes", CLOSE
        )
    if length == 0:
        raise ApiError(400, "empty request body: send an image file (raw bytes or a multipart file field)")
    body = Body(length if length is not None else limits.max_body_bytes + 1, budget)
    loop = asyncio.get_running_loop()
    started, waited = loop.time(), 0.0
    try:
        while True:
            allowed = limits.body_timeout_s + body.size / limits.min_upload_rate
            remaining = started + waited + allowed - loop.time()
            receiving = asyncio.ensure_future(request.receive())
            await asyncio.wait(
                (receiving, body.ticket.dropped),
                timeout=max(remaining, 0.001),
                return_when=asyncio.FIRST_COMPLETED,
            )
            if not receiving.done() or body.ticket.dropped.done():
                receiving.cancel()
                raise ApiError(408, slow_body_message(body, length, limits), CLOSE)
            message = receiving.result()
            if message["type"] == "http.disconnect":
                raise ApiError(400, "the client disconnected before sending the whole body", CLOSE)
            chunk = message.get("body", b"")
            if body.size + len(chunk) > limits.max_body_bytes:
                raise ApiError(
                    413, f"request body is above the limit of {limits.max_body_bytes} bytes", CLOSE
                )
            waited += await budget.take(body.ticket, len(chunk))
            if body.ticket.dropped.done():
                raise ApiError(408, slow_body_message(body, length, limits), CLOSE)
            body.append(chunk)
            if not message.get("more_body", False):
                break
        budget.arrived(body.ticket)
        if not body.size:
            raise ApiError(
                400, "empty request body: send an image file (raw bytes or a multipart file field)"
            )
        return body
    except BaseException:
        body.close()
        raise


def slow_body_message(body: Body, length: int | None, limits: ServerLimits) -> str:
    of = f" of {length}" if length is not None else ""
    if body.ticket.dropped.done():
        return (
            f"the request body stalled: {body.size}{of} bytes, then nothing for {limits.max_stall_s:g} s "
            "while other uploads waited for memory (--max-stall)"
        )
    return (
        f"the request body arrived too slowly: {body.size}{of} bytes; a body may take "
        f"{limits.body_timeout_s:g} s plus 1 s per {format_bytes(limits.min_upload_rate)} "
        "(--body-timeout, --min-upload-rate)"
    )


def uploaded_image(request: Request, body: Body) -> tuple[int, int, str]:
    """(start, end, name for the graph's "image" field) of the image in a raw or multipart body."""
    content_type = request.headers.get("content-type", "")
    if not content_type.lower().startswith("multipart/form-data"):
        return 0, body.size, RAW_UPLOAD_NAME
    start, end, filename = multipart_file(body.buffer, body.size, content_type)
    if start == end:
        raise ApiError(400, f"the uploaded file {filename!r} is empty (0 bytes)")
    return start, end, (filename or RAW_UPLOAD_NAME)[:MAX_NAME_LENGTH]


def bad_form(reason: str) -> ApiError:
    return ApiError(400, f"bad multipart body: {reason}")


def multipart_file(buffer, size: int, content_type: str) -> tuple[int, int, str]:
    """(start, end, filename) of the one file part of the multipart/form-data body buffer[:size].

    `buffer` is anything with `find(sub, start, end)` and slicing (an mmap, bytes). RFC 7578: parts
    separated by CRLF "--" boundary, a preamble before the first boundary and an epilogue after the last
    ("--" boundary "--") are ignored; a part with a `filename` in its Content-Disposition is a file; other
    parts (at most MAX_PARTS) are ignored.
    """
    _, options = parse_options_header(content_type)
    boundary = options.get(b"boundary", b"")
    if not boundary or len(boundary) > 200:
        raise bad_form("no boundary in the Content-Type header")
    delimiter = b"--" + boundary
    if buffer[: len(delimiter)] == delimiter:
        position = len(delimiter)
    else:
        found = buffer.find(b"\r\n" + delimiter, 0, size)
        if found < 0:
            raise bad_form("no part starts with the boundary")
        position = found + 2 + len(delimiter)
    found_file, parts = None, 0
    while True:
        ending = buffer[position : position + 2]
        if ending == b"--":
            break
        if ending != b"\r\n":
            raise bad_form("a boundary is not followed by a line break")
        head_start = position + 2
        head_end = buffer.find(b"\r\n\r\n", head_start, min(size, head_start + MAX_PART_HEAD))
        if head_end < 0:
            raise bad_form("a part's headers are missing, cut or too long")
        content_end = buffer.find(b"\r\n" + delimiter, head_end + 4, size)
        if content_end < 0:
            raise bad_form("the body ends before its closing boundary")
        parts += 1
        if parts > MAX_PARTS:
            raise bad_form(f"more than {MAX_PARTS} parts")
        filename = part_filename(bytes(buffer[head_start:head_end]))
        if filename is not None:
            if found_file is not None:
                raise bad_form("more than one file part; send one image per request")
            found_file = (head_end + 4, content_end, filename)
        position = content_end + 2 + len(delimiter)
    if found_file is None:
        raise ApiError(400, "the multipart body has no file part: send the image as a file field 'image'")
    return found_file


def part_filename(head: bytes) -> str | None:
    """The filename of a part's Content-Disposition (None: not a file part)."""
    for line in head.split(b"\r\n"):
        name, colon, value = line.partition(b":")
        if not colon:
            raise bad_form(f"a part header line has no colon: {line[:60]!r}")
        if name.strip().lower() == b"content-disposition":
            _, options = parse_options_header(value.strip())
            filename = options.get(b"filename")
            return None if filename is None else filename.decode("utf-8", "replace")
    raise bad_form("a part has no Content-Disposition header")
