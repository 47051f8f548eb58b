"""Writing finished work atomically (a temporary file beside the target, then a rename), and reading small
text files with a size bound.

A crash or a kill leaves either the old file or the new one, never half a file.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any


def write_atomically(path: str | Path, write: Callable[[IO[bytes]], Any]) -> Path:
    """Call `write(stream)` on a temporary binary file beside `path`, then rename it to `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            write(stream)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)
    return path


def write_text(path: str | Path, text: str) -> Path:
    """Write `text` (UTF-8) to `path` atomically."""
    return write_atomically(path, lambda stream: stream.write(text.encode("utf-8")))


def read_small_text(path: str | Path, limit: int) -> str:
    """The UTF-8 text of a regular file of at most `limit` bytes; ValueError naming the file otherwise.

    Reads at most `limit + 1` bytes, so a device or a pipe (/dev/zero, a FIFO) cannot make it read forever.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: not a regular file" if path.exists() else f"{path}: no such file")
    with path.open("rb") as stream:
        data = stream.read(limit + 1)
    if len(data) > limit:
        raise ValueError(f"{path}: larger than {limit} bytes; not a configuration file")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise ValueError(f"{path}: not UTF-8 text ({error})") from error
