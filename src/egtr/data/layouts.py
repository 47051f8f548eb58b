"""Which layout a dataset directory uses, and loading one split of it.

Supported layouts, tried in this order: COCO/RelTR (`coco`), Scene-Graph-Benchmark HDF5 (`sgb-h5`),
Open Images PySGG (`open-images`). Every split read is checked for index errors (unknown classes and
predicates, relation indices out of range).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from egtr.data import coco_relations, open_images, sgb_h5
from egtr.data.problems import NotADatasetError, ProblemLog
from egtr.data.record import SceneGraphSplit
from egtr.data.validation import report_index_problems


@dataclass(frozen=True)
class Layout:
    """How to recognise and read one on-disk layout."""

    name: str
    expected: str  # the files that make a directory this layout, for error messages
    matches: Callable[[Path], bool]
    available_splits: Callable[[Path], list[str]]
    read: Callable[..., SceneGraphSplit]  # (root, split, log, **options)

    def option_names(self) -> list[str]:
        parameters = inspect.signature(self.read).parameters.values()
        return [p.name for p in parameters if p.kind is inspect.Parameter.KEYWORD_ONLY]


LAYOUTS = (
    Layout(
        coco_relations.NAME,
        coco_relations.EXPECTED,
        coco_relations.matches,
        coco_relations.available_splits,
        coco_relations.read_coco_split,
    ),
    Layout(sgb_h5.NAME, sgb_h5.EXPECTED, sgb_h5.matches, sgb_h5.available_splits, sgb_h5.read_sgb_split),
    Layout(
        open_images.NAME,
        open_images.EXPECTED,
        open_images.matches,
        open_images.available_splits,
        open_images.read_open_images_split,
    ),
)
SPLITS = ("train", "val", "test")


def detect_layout(root: Path | str) -> Layout:
    """The layout of `root`; raises `NotADatasetError` listing what each layout expects."""
    root = Path(root)
    if not root.is_dir():
        raise NotADatasetError(f"{root} is not a directory")
    for layout in LAYOUTS:
        if layout.matches(root):
            return layout
    expected = "; ".join(f"{layout.name}: {layout.expected}" for layout in LAYOUTS)
    raise NotADatasetError(f"{root} holds no supported dataset layout (expected {expected})")


def read_split(root: Path | str, split: str, log: ProblemLog, **options) -> SceneGraphSplit:
    """Read `split` of the dataset at `root`, sending problems to `log` (strict logs raise)."""
    root = Path(root)
    layout = detect_layout(root)
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    if split not in layout.available_splits(root):
        raise NotADatasetError(f"{root} ({layout.name} layout) has no {split} split")
    unknown = sorted(set(options) - set(layout.option_names()))
    if unknown:
        known = ", ".join(layout.option_names()) or "none"
        raise ValueError(
            f"option(s) {', '.join(unknown)} unknown for the {layout.name} layout (known: {known})"
        )
    loaded = layout.read(root, split, log, **options)
    report_index_problems(loaded, log)
    return loaded


def load_dataset(root: Path | str, split: str = "train", **options) -> SceneGraphSplit:
    """Load one split of a dataset of any supported layout, detected from the files in `root`.

    Options are those of the layout's reader (e.g. `num_val_images` for sgb-h5, `add_one_pixel` for
    open-images). A malformed file or an index error raises `DatasetError` naming file, image and field.
    """
    return read_split(root, split, ProblemLog(strict=True), **options)
