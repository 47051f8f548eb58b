"""The image of a request: the body read within the size and time limits, then the file it carries.

A body is either the raw bytes of an image file (any content type but multipart, e.g. `image/jpeg` or
`application/octet-stream`) or `multipart/form-data` with exactly one file part (the page and
`curl -F image=@photo.jpg` send this). The format is decided by the bytes, not by the content type.
"""

from __future__ import annotations

import asyncio

from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser
from starlette.requests import ClientDisconnect, Request

from egtr.serve.errors import ApiError

RAW_UPLOAD_NAME = "upload"  # the graph's "image" field for a raw-bytes body
MAX_NAME_LENGTH = 255


async def read_body(request: Request, max_bytes: int, timeout_s: float) -> bytes:
    """The whole body; 413 above `max_bytes` (from Content-Length when sent, else while reading), 408
    when it takes longer than `timeout_s`, 400 when empty or the client went away."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.strip().isdigit() and int(declared) > max_bytes:
        raise ApiError(413, f"request body of {int(declared)} bytes is above the limit of {max_bytes} bytes")
    chunks: list[bytes] = []
    received = 0

    async def collect() -> None:
        nonlocal received
        async for chunk in request.stream():
            received += len(chunk)
            if received > max_bytes:
                raise ApiError(413, f"request body is above the limit of {max_bytes} bytes")
            chunks.append(chunk)

    try:
        await asyncio.wait_for(collect(), timeout_s)
    except asyncio.TimeoutError as error:
        raise ApiError(408, f"the request body did not arrive within {timeout_s:g} s") from error
    except ClientDisconnect as error:
        raise ApiError(400, "the client disconnected before sending the whole body") from error
    if not received:
        raise ApiError(400, "empty request body: send an image file (raw bytes or a multipart file field)")
    return b"".join(chunks)


async def uploaded_image(request: Request, body: bytes) -> tuple[bytes, str]:
    """(image bytes, name for the graph's "image" field) from a raw or multipart body."""
    if not request.headers.get("content-type", "").lower().startswith("multipart/form-data"):
        return body, RAW_UPLOAD_NAME

    async def stream():
        yield body

    try:
        form = await MultiPartParser(request.headers, stream(), max_files=1, max_fields=20).parse()
    except MultiPartException as error:
        raise ApiError(400, f"bad multipart body: {error.message}") from error
    files = [value for _, value in form.multi_items() if isinstance(value, UploadFile)]
    try:
        if not files:
            raise ApiError(400, "the multipart body has no file part: send the image as a file field 'image'")
        data = await files[0].read()
    finally:
        await form.close()
    if not data:
        raise ApiError(400, f"the uploaded file {files[0].filename or ''!r} is empty (0 bytes)")
    return data, (files[0].filename or RAW_UPLOAD_NAME)[:MAX_NAME_LENGTH]
