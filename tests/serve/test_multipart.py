"""The in-place multipart parser (serve/uploads.py `multipart_file`) against Starlette's parser, the one it
replaces: on generated well-formed bodies (random boundaries, names, contents that contain pieces of the
boundary, epilogues, other fields) both find the same file name and bytes; malformed bodies
are a 400 naming the problem."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.datastructures import Headers, UploadFile
from starlette.formparsers import MultiPartParser

from egtr.serve.errors import ApiError
from egtr.serve.uploads import multipart_file

BOUNDARY_CHARACTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789'()+_,-./:=?"
NAME_CHARACTERS = st.characters(min_codepoint=32, max_codepoint=0x2FF, blacklist_characters='"\\\r\n%')


def starlette_file(body: bytes, content_type: str) -> tuple[str, bytes]:
    async def parse():
        async def stream():
            yield body

        form = await MultiPartParser(Headers({"content-type": content_type}), stream(), max_files=1).parse()
        files = [value for _, value in form.multi_items() if isinstance(value, UploadFile)]
        return files[0].filename, await files[0].read()

    return asyncio.run(parse())


def part(boundary: str, disposition: str, content: bytes, content_type: str | None = None) -> bytes:
    head = f"--{boundary}\r\nContent-Disposition: {disposition}\r\n"
    if content_type:
        head += f"Content-Type: {content_type}\r\n"
    return head.encode() + b"\r\n" + content + b"\r\n"


@st.composite
def forms(draw):
    boundary = draw(st.text(BOUNDARY_CHARACTERS, min_size=1, max_size=70))
    pieces = [b"\r\n", b"--", boundary.encode()[: len(boundary) // 2], b"\r\n--", b"\r\n\r\n", b"\x00\xff"]
    content = b"".join(
        draw(st.lists(st.one_of(st.binary(max_size=40), st.sampled_from(pieces)), max_size=12))
    )
    filename = draw(st.text(NAME_CHARACTERS, min_size=1, max_size=30))
    fields = draw(st.lists(st.text("abc xyz", max_size=20), max_size=3))
    before = draw(st.integers(0, len(fields)))
    body = b""  # python-multipart takes no preamble (RFC 2046 allows one: tested below)
    for index, value in enumerate(fields):
        if index == before:
            body += part(boundary, f'form-data; name="image"; filename="{filename}"', content, "image/png")
        body += part(boundary, f'form-data; name="field{index}"', value.encode())
    if before == len(fields):
        body += part(boundary, f'form-data; name="image"; filename="{filename}"', content)
    body += f"--{boundary}--".encode() + draw(st.sampled_from([b"\r\n", b"", b"\r\nan epilogue"]))
    return body, f'multipart/form-data; boundary="{boundary}"', filename, content


@settings(max_examples=300, deadline=None)
@given(forms())
def test_the_file_part_is_what_starlette_finds(form):
    body, content_type, filename, content = form
    start, end, found = multipart_file(body, len(body), content_type)
    assert (found, body[start:end]) == starlette_file(body, content_type) == (filename, content)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"no boundary anywhere", "no part starts with the boundary"),
        (b"--b\r\nContent-Disposition: form-data; name=x", "a part's headers are missing, cut or too long"),
        (
            b'--b\r\nContent-Disposition: form-data; name="a"; filename="a"\r\n\r\ndata',
            "ends before its closing",
        ),
        (b"--b\r\nX: y\r\n\r\ndata\r\n--b--", "a part has no Content-Disposition header"),
        (b"--b\r\nno colon\r\n\r\ndata\r\n--b--", "a part header line has no colon"),
        (b"--bX", "a boundary is not followed by a line break"),
        (
            b'--b\r\nContent-Disposition: form-data; name="a"; filename="1"\r\n\r\n1\r\n'
            b'--b\r\nContent-Disposition: form-data; name="b"; filename="2"\r\n\r\n2\r\n--b--',
            "more than one file part",
        ),
        (
            b"".join(b'--b\r\nContent-Disposition: form-data; name="f"\r\n\r\nv\r\n' for _ in range(21))
            + b"--b--",
            "more than 20 parts",
        ),
        (b'--b\r\nContent-Disposition: form-data; name="f"\r\n\r\nv\r\n--b--', "has no file part"),
    ],
)
def test_malformed_bodies_are_400_naming_the_problem(body, message):
    with pytest.raises(ApiError) as refused:
        multipart_file(body, len(body), "multipart/form-data; boundary=b")
    assert refused.value.status == 400 and message in refused.value.message


def test_a_content_type_without_boundary_is_400():
    with pytest.raises(ApiError, match="no boundary in the Content-Type header"):
        multipart_file(b"--b--", 5, "multipart/form-data")


def test_a_preamble_before_the_first_boundary_is_skipped():
    body = b"preamble text\r\n" + part("b", 'form-data; name="i"; filename="x.png"', b"DATA") + b"--b--"
    start, end, name = multipart_file(body, len(body), "multipart/form-data; boundary=b")
    assert (body[start:end], name) == (b"DATA", "x.png")
