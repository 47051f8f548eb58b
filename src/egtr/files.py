"""Writing finished work atomically (a temporary file beside the target, then a rename), and reading small
text files with a size bound.

A crash or a kill leaves either the old file or the new one, never half a file. With `durable=True` the data
reach the disk before the rename and the rename reaches it before the call returns (fsync of the file, then
of its folder), so that a power cut leaves the old file or the whole new one, too.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any


def write_atomically(path: str | Path, write: Callable[[IO[bytes]], Any], durable: bool = False) -> Path:
    """Call `write(stream)` on a temporary binary file beside `path`, then rename it to `path` (`durable`:
    fsync the file before the rename and the folder after it)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            write(stream)
            if durable:
                stream.flush()
                os.fsync(stream.fileno())
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)
    if durable:
        sync_folder(path.parent)
    return path


def write_text(path: str | Path, text: str, durable: bool = False) -> Path:
    """Write `text` (UTF-8) to `path` atomically (`durable`: see `write_atomically`)."""
    return write_atomically(path, lambda stream: stream.write(text.encode("utf-8")), durable)


def sync_folder(folder: str | Path) -> None:
    """fsync a folder, so that the renames and removals in it survive a power cut (where the system can)."""
    try:
        handle = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:  # a system that cannot open folders (Windows) orders renames itself
        return
    try:
        os.fsync(handle)
    except OSError:  # file systems that do not sync folders
        pass
    finally:
        os.close(handle)


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
