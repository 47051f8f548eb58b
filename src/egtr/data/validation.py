"""Checks of records that need no image file: index ranges, boxes, duplicate triplets.

Locations are per image: `boxes[j]`/`labels[j]` is the j-th object of the image in file order and
`relations[k]` its k-th relation in file order. All checks are vectorized over the whole split.
"""

from __future__ import annotations

import numpy as np

from egtr.data import problems as kinds
from egtr.data.problems import ProblemLog
from egtr.data.record import SceneGraphSplit


class _Flat:
    """The split's per-image arrays concatenated, with the offsets to locate an entry."""

    def __init__(self, split: SceneGraphSplit):
        records = split.records
        self.box_counts = np.array([r.num_objects for r in records], dtype=np.int64)
        self.relation_counts = np.array([r.num_relations for r in records], dtype=np.int64)
        self.box_offsets = np.concatenate(([0], np.cumsum(self.box_counts)))
        self.relation_offsets = np.concatenate(([0], np.cumsum(self.relation_counts)))
        self.labels = np.concatenate([r.labels for r in records] + [np.zeros(0, np.int64)])
        self.boxes = np.concatenate([r.boxes for r in records] + [np.zeros((0, 4), np.float32)])
        self.relations = np.concatenate([r.relations for r in records] + [np.zeros((0, 3), np.int64)])
        self.sizes = np.array([(r.width, r.height) for r in records], dtype=np.float64).reshape(-1, 2)

    @staticmethod
    def locate(offsets: np.ndarray, position: int) -> tuple[int, int]:
        """(record index, index within the record) of a flat position."""
        record = int(np.searchsorted(offsets, position, side="right") - 1)
        return record, int(position - offsets[record])


def _file(split: SceneGraphSplit, relations: bool = False) -> str:
    chosen = split.relation_file if relations and split.relation_file else split.annotation_file
    return str(chosen or split.root)


def report_index_problems(split: SceneGraphSplit, log: ProblemLog) -> None:
    """Unknown class indices, unknown predicate indices and relation box indices out of range."""
    flat = _Flat(split)
    base = split.file_index_base
    box_file, relation_file = _file(split), _file(split, relations=True)
    for position in np.flatnonzero((flat.labels < 0) | (flat.labels >= split.num_classes)):
        record, index = flat.locate(flat.box_offsets, position)
        value = int(flat.labels[position])
        log.report(
            kinds.UNKNOWN_CLASS,
            box_file,
            split.records[record].image_id,
            f"labels[{index}]",
            f"class {value} (file value {value + base}) is not one of the {split.num_classes} classes "
            f"(file values {base}..{split.num_classes - 1 + base})",
        )
    predicates = flat.relations[:, 2]
    for position in np.flatnonzero((predicates < 0) | (predicates >= split.num_predicates)):
        record, index = flat.locate(flat.relation_offsets, position)
        value = int(predicates[position])
        log.report(
            kinds.UNKNOWN_PREDICATE,
            relation_file,
            split.records[record].image_id,
            f"relations[{index}]",
            f"predicate {value} (file value {value + base}) is not one of the {split.num_predicates} "
            f"predicates (file values {base}..{split.num_predicates - 1 + base})",
        )
    boxes_of_relation = np.repeat(flat.box_counts, flat.relation_counts)
    pairs = flat.relations[:, :2]
    bad_pairs = ((pairs < 0) | (pairs >= boxes_of_relation[:, None])).any(axis=1)
    for position in np.flatnonzero(bad_pairs):
        record, index = flat.locate(flat.relation_offsets, position)
        subject, object_ = (int(v) for v in pairs[position])
        log.report(
            kinds.RELATION_INDEX_OUT_OF_RANGE,
            relation_file,
            split.records[record].image_id,
            f"relations[{index}]",
            f"subject/object index ({subject}, {object_}) is outside the image's "
            f"{int(boxes_of_relation[position])} boxes",
        )


def report_box_problems(split: SceneGraphSplit, log: ProblemLog, tolerance: float = 1.0) -> None:
    """Empty boxes (width or height <= 0) and boxes reaching more than `tolerance` px past the image."""
    flat = _Flat(split)
    file = _file(split)
    boxes = flat.boxes.astype(np.float64)
    sizes = np.repeat(flat.sizes, flat.box_counts, axis=0)
    empty = (boxes[:, 2] <= boxes[:, 0]) | (boxes[:, 3] <= boxes[:, 1])
    outside = (boxes[:, :2] < -tolerance).any(axis=1) | (boxes[:, 2:] > sizes + tolerance).any(axis=1)
    for position in np.flatnonzero(empty | outside):
        record, index = flat.locate(flat.box_offsets, position)
        image = split.records[record]
        box = ", ".join(f"{v:g}" for v in boxes[position])
        if empty[position]:
            log.report(kinds.EMPTY_BOX, file, image.image_id, f"boxes[{index}]", f"box ({box}) has no area")
        if outside[position]:
            log.report(
                kinds.BOX_OUTSIDE_IMAGE,
                file,
                image.image_id,
                f"boxes[{index}]",
                f"box ({box}) reaches outside the {image.width}x{image.height} image",
            )


def report_duplicate_triplets(split: SceneGraphSplit, log: ProblemLog) -> None:
    """Relations that repeat an earlier (subject, object, predicate) of the same image."""
    flat = _Flat(split)
    if len(flat.relations) == 0:
        return
    image_of_relation = np.repeat(np.arange(len(split.records)), flat.relation_counts)
    keyed = np.column_stack((image_of_relation, flat.relations))
    _, first, inverse = np.unique(keyed, axis=0, return_index=True, return_inverse=True)
    first_of_row = first[inverse.reshape(-1)]
    for position in np.flatnonzero(first_of_row != np.arange(len(keyed))):
        record, index = flat.locate(flat.relation_offsets, position)
        _, earlier = flat.locate(flat.relation_offsets, int(first_of_row[position]))
        triplet = tuple(int(v) for v in flat.relations[position])
        log.report(
            kinds.DUPLICATE_TRIPLET,
            _file(split, relations=True),
            split.records[record].image_id,
            f"relations[{index}]",
            f"triplet (subject, object, predicate) {triplet} repeats relations[{earlier}]",
        )
