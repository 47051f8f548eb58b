"""The images of a collection: folders, glob patterns and file lists expanded into one list, in a fixed order.

- a folder is searched recursively: files with an image extension in sorted path order (hidden names and
  other files are skipped and counted, as `egtr predict` always did, egtr.inference.image_files);
- a pattern (`'photos/**/*.jpg'`, quoted so that the shell leaves it alone) is expanded by `glob` (`**`
  crosses folders), its matches sorted: a matched folder is searched as above, a matched file is taken when it
  has an image extension;
- a file named directly is always attempted, whatever its extension;
- a file list (`--file-list FILE`) names one image file per line (UTF-8; empty lines skipped), taken
  literally: no pattern, no folder search. Relative lines are relative to the current folder, as on a command
  line.

Each image is known by its key: its path as the sources name it, normalized by `os.path.normpath`
(`./photos//a.jpg` -> `photos/a.jpg`): a folder's images are `FOLDER/sub/a.jpg` with FOLDER as given, a
pattern's matches as glob returns them, a list's lines as written. The key is the `image` of the JSON and
what the output folder's index records; resuming matches keys, so run again from the same folder with the
same sources (absolute paths make an output folder independent of the current folder). An image named
twice (by two sources) is predicted once and counted in `duplicates`.

Only the user's own inputs decide which files are read: folders and patterns by listing the file system, the
file list by its lines; nothing read from an output folder adds an input.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from egtr.inference.image_files import find_images, image_extensions


@dataclass(frozen=True)
class CollectionImage:
    key: str  # the normalized path as the sources name it (see the module docstring)
    relative_name: (
        Path  # its name in the per-image layout: sub-folders below a folder source, else the file name
    )


@dataclass
class Collection:
    images: list[CollectionImage] = field(default_factory=list)
    missing: list[dict] = field(default_factory=list)  # {"input", "error"}: what names no file
    skipped: dict[str, int] = field(default_factory=dict)  # folder or pattern -> files that are not images
    duplicates: int = 0  # images named again by a later source


def find_collection(sources: Iterable[str | Path], file_list: str | Path | None = None) -> Collection:
    """The images of `sources` (folders, patterns, files) and then of `file_list`, in that order.

    Raises ValueError naming the file list and line when the list cannot be read."""
    collection = Collection()
    seen: set[str] = set()

    def add(path: str | Path, relative_name: str | Path) -> None:
        key = os.path.normpath(str(path))
        if key in seen:
            collection.duplicates += 1
            return
        seen.add(key)
        collection.images.append(CollectionImage(key, Path(relative_name)))

    extensions = image_extensions()
    for source in map(str, sources):
        pattern = not os.path.lexists(source) and glob.has_magic(source)
        entries = sorted(glob.glob(source, recursive=True)) if pattern else [source]
        if not entries:
            collection.missing.append({"input": source, "error": "no file matches this pattern"})
            continue
        skipped = 0
        for entry in entries:
            if pattern and os.path.isfile(entry) and Path(entry).suffix.lower() not in extensions:
                skipped += 1
                continue
            found = find_images([entry])
            for image in found.files:
                add(image.path, image.relative_name)
            skipped += sum(found.skipped.values())
            for path in found.missing:
                collection.missing.append({"input": str(path), "error": "no such file or directory"})
        if skipped:
            collection.skipped[source] = skipped
    if file_list is not None:
        for number, line in listed_paths(file_list):
            if os.path.isfile(line):
                add(line, Path(line).name)
            else:
                reason = "not a file" if os.path.exists(line) else "no such file or directory"
                collection.missing.append({"input": line, "error": f"{reason} ({file_list}, line {number})"})
    return collection


def listed_paths(file_list: str | Path) -> Iterator[tuple[int, str]]:
    """(line number, path) of every non-empty line of a file list, read as it streams."""
    path = Path(file_list)
    if not path.is_file():
        raise ValueError(f"--file-list {path}: {'not a file' if path.exists() else 'no such file'}")
    with path.open("rb") as lines:
        for number, raw in enumerate(lines, start=1):
            try:
                line = raw.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError as error:
                raise ValueError(f"--file-list {path}, line {number}: not UTF-8 text ({error})") from error
            if line:
                yield number, line
