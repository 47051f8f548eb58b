"""Finding the image files named on a command line: files as given, directories searched recursively.

In a directory, files whose extension PIL can open (.jpg, .png, .webp, .tif, ...) are taken in sorted
path order; hidden files and folders (names starting with '.') and files of other types are skipped and
counted. A file named directly is always attempted, whatever its extension (a bad one fails alone).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image


def image_extensions() -> frozenset[str]:
    """Lower-case extensions (with the dot) of the formats PIL can open."""
    return frozenset(ext for ext, fmt in Image.registered_extensions().items() if fmt in Image.OPEN)


@dataclass(frozen=True)
class ImageFile:
    path: Path
    relative_name: Path  # path below the directory it was found in (the file name for a named file)


@dataclass
class FoundImages:
    files: list[ImageFile] = field(default_factory=list)
    missing: list[Path] = field(default_factory=list)  # inputs that do not exist
    skipped: dict[Path, int] = field(default_factory=dict)  # directory -> number of non-image files


def find_images(inputs: Iterable[str | Path]) -> FoundImages:
    """Expand files and directories (recursively) into image files, in input order."""
    extensions = image_extensions()
    found = FoundImages()
    for entry in map(Path, inputs):
        if entry.is_dir():
            skipped = 0
            for path in sorted(entry.rglob("*")):
                relative = path.relative_to(entry)
                if any(part.startswith(".") for part in relative.parts) or not path.is_file():
                    continue
                if path.suffix.lower() in extensions:
                    found.files.append(ImageFile(path, relative))
                else:
                    skipped += 1
            if skipped:
                found.skipped[entry] = skipped
        elif entry.exists():
            found.files.append(ImageFile(entry, Path(entry.name)))
        else:
            found.missing.append(entry)
    return found
