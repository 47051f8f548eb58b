"""Image paths named by dataset files, kept inside the dataset's image folder.

A dataset file names its images (`file_name`, `img_fn`, `image_id`); the name is joined to the image
folder only when it stays inside it lexically: not empty, not absolute (POSIX or Windows: no leading
slash, drive or UNC share), no `..` component (slashes and backslashes both count as separators) and no
NUL byte. Symbolic links inside the folder are the dataset owner's choice and are followed.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath, PureWindowsPath


def image_path_inside(folder: Path, name: str) -> Path:
    """`folder / name`; ValueError (the reason) when `name` would leave `folder`."""
    if not name:
        raise ValueError("empty file name")
    if "\x00" in name:
        raise ValueError("file name holds a NUL byte")
    if PurePosixPath(name).is_absolute() or PureWindowsPath(name).anchor:
        raise ValueError(f"absolute path {name!r} leaves the image folder")
    if ".." in PureWindowsPath(name).parts:  # splits on both / and \
        raise ValueError(f"path {name!r} leaves the image folder through '..'")
    return folder / name
