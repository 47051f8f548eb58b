"""Reading the JSON files of a dataset with errors that name the file and the field."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from egtr.data import problems as kinds
from egtr.data.problems import DatasetError, Problem


def format_error(file: Path | str, field: str, message: str, image_id: object = "") -> DatasetError:
    """A `DatasetError` for a structurally broken file or field."""
    return DatasetError(Problem(kinds.FORMAT, str(file), str(image_id), field, message))


def read_json(path: Path, kind: type = object) -> Any:
    """Parse a JSON file whose top level must be a `kind`; otherwise raise `DatasetError`."""
    if not path.is_file():
        raise format_error(path, "(file)", "file not found")
    try:
        with path.open("rb") as handle:
            value = json.load(handle)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise format_error(path, "(file)", f"not valid JSON: {error}") from error
    if not isinstance(value, kind):
        raise format_error(path, "(file)", f"top level must be a JSON {kind.__name__}")
    return value


def require(container: Any, key: str | int, file: Path, field: str, kind: type | tuple = object) -> Any:
    """`container[key]`, which must exist and be an instance of `kind`, else `DatasetError`."""
    try:
        value = container[key]
    except (KeyError, IndexError, TypeError) as error:
        raise format_error(file, field, "missing") from error
    if not isinstance(value, kind):
        expected = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise format_error(file, field, f"expected {expected}, got {type(value).__name__}")
    return value


def string_list(values: Any, file: Path, field: str) -> list[str]:
    """A JSON list of strings (class or predicate names)."""
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise format_error(file, field, "expected a list of names (strings)")
    return list(values)
