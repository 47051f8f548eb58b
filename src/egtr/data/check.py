"""Validation of a whole dataset directory (`egtr data check`): every problem with its location, and a
summary of each split.

Problems found: malformed files and fields, unknown class or predicate ids, relation indices out of
range, empty boxes, boxes outside the image, duplicate triplets, image names that leave the image folder
(absolute paths, `..`; the file is never opened), missing or unreadable image files and annotated sizes
that differ from the image file (read from the image header only, unless `decode`).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from egtr.data import problems as kinds
from egtr.data.images import ImageReadError, load_rgb
from egtr.data.layouts import detect_layout, read_split
from egtr.data.problems import DatasetError, Problem, ProblemLog
from egtr.data.record import SceneGraphRecord, SceneGraphSplit
from egtr.data.validation import report_box_problems, report_duplicate_triplets

# Read files as they are: no train-time filtering that would hide problems.
CHECK_OPTIONS = {"open-images": {"filter_duplicate_rels": False}}
IMAGE_READERS = 8


@dataclass
class SplitSummary:
    """Counts of one split (classes and predicates by name, only indices in range are counted)."""

    split: str
    images: int = 0
    boxes: int = 0
    relations: int = 0
    images_without_relations: int = 0
    class_counts: dict[str, int] = field(default_factory=dict)
    predicate_counts: dict[str, int] = field(default_factory=dict)
    readable: bool = True  # False when a file of the split could not be parsed at all


@dataclass
class CheckReport:
    root: str
    layout: str
    splits: list[SplitSummary]
    problems: list[Problem]

    def to_dict(self) -> dict:
        return {
            "root": self.root,
            "layout": self.layout,
            "splits": [asdict(summary) for summary in self.splits],
            "problems": [problem.to_dict() for problem in self.problems],
        }


def _named_counts(values: np.ndarray, names: list[str]) -> dict[str, int]:
    valid = values[(values >= 0) & (values < len(names))]
    counts = np.bincount(valid, minlength=len(names))
    return {name: int(count) for name, count in zip(names, counts)}


def summarize(split: SceneGraphSplit) -> SplitSummary:
    records = split.records
    labels = np.concatenate([r.labels for r in records] + [np.zeros(0, np.int64)])
    predicates = np.concatenate([r.relations[:, 2] for r in records] + [np.zeros(0, np.int64)])
    return SplitSummary(
        split=split.split,
        images=len(records),
        boxes=len(labels),
        relations=len(predicates),
        images_without_relations=sum(1 for r in records if r.num_relations == 0),
        class_counts=_named_counts(labels, split.class_names),
        predicate_counts=_named_counts(predicates, split.predicate_names),
    )


def _image_size(path: Path, decode: bool) -> tuple[int, int] | str:
    """(width, height) from the header, or with `decode` from the pixels read as training and evaluation
    read them (the one image reader); the error message when the file cannot be read."""
    if decode:
        try:
            return load_rgb(path, str(path)).size
        except ImageReadError as error:
            return error.reason
    try:
        with Image.open(path) as image:
            return image.size
    except (OSError, ValueError, Image.DecompressionBombError) as error:
        return str(error) or type(error).__name__


def report_image_problems(split: SceneGraphSplit, log: ProblemLog, decode: bool = False) -> None:
    """Missing files, unreadable files and annotated sizes that differ from the file's."""
    records: list[SceneGraphRecord] = split.records
    existing = [record for record in records if record.image_path.is_file()]
    for record in records:
        if not record.image_path.is_file():
            log.report(
                kinds.MISSING_IMAGE, record.image_path, record.image_id, "image file", "file not found"
            )
    with ThreadPoolExecutor(IMAGE_READERS) as pool:
        sizes = list(pool.map(lambda r: _image_size(r.image_path, decode), existing))
    for record, size in zip(existing, sizes):
        if isinstance(size, str):
            log.report(kinds.UNREADABLE_IMAGE, record.image_path, record.image_id, "image file", size)
        elif size != (record.width, record.height):
            log.report(
                kinds.SIZE_MISMATCH,
                split.annotation_file or split.root,
                record.image_id,
                "width/height",
                f"annotated {record.width}x{record.height}, image file is {size[0]}x{size[1]}",
            )


def check_dataset(
    root: Path | str,
    splits: list[str] | None = None,
    images: bool = True,
    decode: bool = False,
    box_tolerance: float = 1.0,
) -> CheckReport:
    """Check `splits` (default: every split present) of the dataset at `root`.

    Raises `NotADatasetError` when `root` holds no supported layout. `images=False` skips the image
    files; `box_tolerance` is how many pixels a box may reach past the image border.
    """
    root = Path(root)
    layout = detect_layout(root)
    log = ProblemLog(strict=False)
    summaries = []
    for split_name in splits or layout.available_splits(root):
        try:
            split = read_split(root, split_name, log, **CHECK_OPTIONS.get(layout.name, {}))
        except DatasetError as error:
            log.problems.append(error.problem)
            summaries.append(SplitSummary(split=split_name, readable=False))
            continue
        report_box_problems(split, log, box_tolerance)
        report_duplicate_triplets(split, log)
        if images:
            report_image_problems(split, log, decode)
        summaries.append(summarize(split))
    return CheckReport(root=str(root), layout=layout.name, splits=summaries, problems=log.problems)
