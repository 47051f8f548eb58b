"""Problems found in a dataset, each with its location (file, image id, field), and how they surface.

A `ProblemLog` either raises `DatasetError` at the first problem (strict: loading for training) or
collects every problem (collecting: `egtr data check`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

FORMAT = "format"  # a file or field that cannot be parsed (missing key, wrong type or shape)
MISSING_IMAGE = "missing_image"
UNREADABLE_IMAGE = "unreadable_image"
SIZE_MISMATCH = "size_mismatch"  # annotated width/height differ from the image file
BOX_OUTSIDE_IMAGE = "box_outside_image"
EMPTY_BOX = "empty_box"  # zero or negative width or height
UNKNOWN_CLASS = "unknown_class"
UNKNOWN_PREDICATE = "unknown_predicate"
RELATION_INDEX_OUT_OF_RANGE = "relation_index_out_of_range"
DUPLICATE_TRIPLET = "duplicate_triplet"
UNSAFE_PATH = "unsafe_path"  # an image name that leaves the dataset's image folder (absolute, "..")

PROBLEM_KINDS = (
    FORMAT,
    MISSING_IMAGE,
    UNREADABLE_IMAGE,
    SIZE_MISMATCH,
    BOX_OUTSIDE_IMAGE,
    EMPTY_BOX,
    UNKNOWN_CLASS,
    UNKNOWN_PREDICATE,
    RELATION_INDEX_OUT_OF_RANGE,
    DUPLICATE_TRIPLET,
    UNSAFE_PATH,
)


@dataclass(frozen=True)
class Problem:
    """One problem: what (`kind`, `message`) and where (`file`, `image_id`, `field`).

    `image_id` is "" when the problem concerns a whole file; `field` names the JSON/HDF5 field, with
    per-image positions such as `boxes[3]` (the 4th object of that image in file order).
    """

    kind: str
    file: str
    image_id: str
    field: str
    message: str

    def __str__(self) -> str:
        where = f"image {self.image_id}, " if self.image_id else ""
        return f"{self.file}: {where}{self.field}: {self.message} [{self.kind}]"

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


class DatasetError(ValueError):
    """A dataset file that cannot be used; `problem` says where."""

    def __init__(self, problem: Problem):
        super().__init__(str(problem))
        self.problem = problem


class NotADatasetError(ValueError):
    """A directory that holds none of the supported layouts."""


class ProblemLog:
    """Receives problems; strict logs raise `DatasetError` at the first one, others collect them all."""

    def __init__(self, strict: bool = True):
        self.strict = strict
        self.problems: list[Problem] = []

    def report(self, kind: str, file: Path | str, image_id: object, field: str, message: str) -> None:
        problem = Problem(kind, str(file), "" if image_id is None else str(image_id), field, message)
        if self.strict:
            raise DatasetError(problem)
        self.problems.append(problem)

    def __len__(self) -> int:
        return len(self.problems)
