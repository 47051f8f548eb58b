"""The in-memory scene-graph record that every dataset layout is read into.

All indices are 0-based: `labels` index `SceneGraphSplit.class_names`, the third column of `relations`
indexes `SceneGraphSplit.predicate_names`, and the first two columns index the record's boxes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


def as_table(values, dtype: type, columns: int) -> np.ndarray:
    """`values` as a [rows, columns] array of `dtype`; an empty input gives shape [0, columns]."""
    array = np.asarray(values, dtype=dtype)
    if array.size == 0:
        return array.reshape(0, columns)
    if array.ndim != 2 or array.shape[1] != columns:
        raise ValueError(f"expected shape [n,{columns}], got {list(array.shape)}")
    return array


@dataclass(eq=False)
class SceneGraphRecord:
    """Ground truth of one image.

    boxes: float32 [M,4] (x0, y0, x1, y1) in pixels of the annotated size; labels: int64 [M];
    relations: int64 [T,3] (subject box index, object box index, predicate).
    """

    image_id: str
    image_path: Path
    width: int
    height: int
    boxes: np.ndarray
    labels: np.ndarray
    relations: np.ndarray

    def __post_init__(self) -> None:
        if not isinstance(self.image_path, Path):
            self.image_path = Path(self.image_path)
        self.width, self.height = int(self.width), int(self.height)
        self.boxes = as_table(self.boxes, np.float32, 4)
        self.labels = np.asarray(self.labels, dtype=np.int64).reshape(-1)
        self.relations = as_table(self.relations, np.int64, 3)
        if len(self.labels) != len(self.boxes):
            raise ValueError(f"image {self.image_id}: {len(self.boxes)} boxes but {len(self.labels)} labels")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SceneGraphRecord):
            return NotImplemented
        return (
            (self.image_id, self.image_path, self.width, self.height)
            == (other.image_id, other.image_path, other.width, other.height)
            and np.array_equal(self.boxes, other.boxes)
            and np.array_equal(self.labels, other.labels)
            and np.array_equal(self.relations, other.relations)
        )

    __hash__ = None  # mutable arrays inside

    @property
    def num_objects(self) -> int:
        return len(self.labels)

    @property
    def num_relations(self) -> int:
        return len(self.relations)


@dataclass(eq=False)
class SceneGraphSplit:
    """One split of a dataset: its records and vocabularies.

    `annotation_file` holds the boxes and `relation_file` the relations (for problem reports; the same
    file in most layouts); `file_index_base` is what the files add to the 0-based class and predicate
    indices (1 for COCO/RelTR and SGB-HDF5, 0 for Open Images); `options` are the reader options used.
    """

    records: list[SceneGraphRecord]
    class_names: list[str]
    predicate_names: list[str]
    layout: str
    root: Path
    split: str
    annotation_file: Path | None = None
    relation_file: Path | None = None
    file_index_base: int = 0
    options: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.records)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def num_predicates(self) -> int:
        return len(self.predicate_names)
