"""Prediction outputs: unique output names, JSON Lines written to a temporary file first."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path


class OutputNames:
    """Distinct output stems (paths without suffix, relative to the output folder) for input images.

    An image found in a directory keeps its sub-folders (`a/b/cat.jpg` -> `a/b/cat`); a stem already taken
    (case-insensitively, also as `<stem>.<extra>` for an extra output such as `cat.explain`) gets `-2`,
    `-3`, ... (`cat.jpg` and `cat.png` -> `cat`, `cat-2`). `reserved` stems are never handed out.
    """

    def __init__(self, reserved: tuple[str, ...] = (), extras: tuple[str, ...] = ()) -> None:
        self.extras = extras
        self.used: set[str] = {name.lower() for name in reserved}

    def _forms(self, stem: Path) -> list[str]:
        return [str(stem).lower()] + [f"{stem}.{extra}".lower() for extra in self.extras]

    def reserve(self, stem: str | Path) -> None:
        """Mark `stem` (and its extras) as taken, as if claimed: e.g. an output already on disk."""
        self.used.update(self._forms(Path(stem)))

    def claim(self, relative_name: str | Path) -> Path:
        stem = Path(relative_name).with_suffix("")
        candidate, number = stem, 1
        while any(form in self.used for form in self._forms(candidate)):
            number += 1
            candidate = stem.with_name(f"{stem.name}-{number}")
        self.used.update(self._forms(candidate))
        return candidate


class JsonLinesWriter:
    """Appends one JSON object per line to a temporary file; `close()` renames it to `path`.

    Each line is flushed as it is written, so a killed run leaves its finished lines in the temporary
    file (`.<name>.*.tmp` beside `path`).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle, self.temporary = tempfile.mkstemp(
            dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp"
        )
        self.stream = os.fdopen(handle, "w", encoding="utf-8")

    def write(self, record: dict) -> None:
        self.stream.write(json.dumps(record) + "\n")
        self.stream.flush()

    def close(self) -> Path:
        if not self.stream.closed:
            self.stream.close()
            os.replace(self.temporary, self.path)
        return self.path
