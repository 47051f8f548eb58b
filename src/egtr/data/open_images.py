"""Reader of Open Images V6 in the PySGG/BGNN/SGTR layout used by EGTR.

    ROOT/annotations/vrd-{train,val,test}-anno.json  [{img_fn, img_size [W, H], bbox [[x0, y0, x1, y1]],
                                                       det_labels [0-based], rel [[subject, object,
                                                       predicate (0-based)]]}, ...]
    ROOT/annotations/categories_dict.json            {"obj": [class names], "rel": [predicate names]}
    ROOT/images/<img_fn>.jpg

Options reproduce the official loader: `add_one_pixel` (default on) makes every box 1 px wider and taller
(the official conversion to COCO (x, y, w, h) uses w = x1 - x0 + 1); `max_objects` drops images with more
boxes (officially the number of queries, train split only); `filter_duplicate_rels` removes exact repeats
of a triplet (default: on for train, off otherwise, as officially). The official `filter_multiple_rels`
(one random predicate per pair at every access) is `SceneGraphDataset(single_predicate_per_pair=True)`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from egtr.data import problems as kinds
from egtr.data.image_paths import image_path_inside
from egtr.data.jsonfile import read_json, require, string_list
from egtr.data.problems import ProblemLog
from egtr.data.record import SceneGraphRecord, SceneGraphSplit, as_table
from egtr.data.relation_filters import remove_duplicate_triplets

NAME = "open-images"
SPLITS = ("train", "val", "test")
CATEGORY_FILE = Path("annotations") / "categories_dict.json"
EXPECTED = "annotations/categories_dict.json, annotations/vrd-{train,val,test}-anno.json, images/"


def annotation_file(root: Path, split: str) -> Path:
    return root / "annotations" / f"vrd-{split}-anno.json"


def matches(root: Path) -> bool:
    return (root / CATEGORY_FILE).is_file()


def available_splits(root: Path) -> list[str]:
    return [split for split in SPLITS if annotation_file(root, split).is_file()]


def _parse_entry(entry: Any) -> tuple[str, tuple[int, int], np.ndarray, np.ndarray, np.ndarray]:
    """(img_fn, (W, H), boxes [M,4] float64, labels [M], relations [T,3]); raises KeyError(field) or
    ValueError(field: message) on a malformed entry."""
    if not isinstance(entry, dict):
        raise ValueError("(entry): not an object")
    fields = {}
    for name in ("img_fn", "img_size", "bbox", "det_labels", "rel"):
        if name not in entry:
            raise ValueError(f"{name}: missing")
        fields[name] = entry[name]
    if not isinstance(fields["img_fn"], str) or not fields["img_fn"]:
        raise ValueError("img_fn: not a file name")
    size = fields["img_size"]
    if not (isinstance(size, list) and len(size) == 2 and all(isinstance(v, int) and v > 0 for v in size)):
        raise ValueError("img_size: expected [width, height], positive integers")
    try:
        boxes = as_table(fields["bbox"], np.float64, 4)
    except (TypeError, ValueError) as error:
        raise ValueError(f"bbox: {error}") from error
    try:
        labels = np.asarray(fields["det_labels"], dtype=np.int64).reshape(-1)
    except (TypeError, ValueError) as error:
        raise ValueError(f"det_labels: {error}") from error
    if len(labels) != len(boxes):
        raise ValueError(f"det_labels: {len(labels)} labels for {len(boxes)} boxes")
    try:
        relations = as_table(fields["rel"], np.int64, 3)
    except (TypeError, ValueError) as error:
        raise ValueError(f"rel: {error}") from error
    return fields["img_fn"], (size[0], size[1]), boxes, labels, relations


def read_open_images_split(
    root: Path,
    split: str,
    log: ProblemLog,
    *,
    add_one_pixel: bool = True,
    max_objects: int | None = None,
    filter_duplicate_rels: bool | None = None,
) -> SceneGraphSplit:
    """Read one split of an Open Images (PySGG layout) dataset; options as in the module doc."""
    categories_file, split_file = root / CATEGORY_FILE, annotation_file(root, split)
    categories = read_json(categories_file, dict)
    class_names = string_list(require(categories, "obj", categories_file, "obj"), categories_file, "obj")
    predicate_names = string_list(require(categories, "rel", categories_file, "rel"), categories_file, "rel")
    entries = read_json(split_file, list)
    remove_duplicates = split == "train" if filter_duplicate_rels is None else filter_duplicate_rels

    records, seen = [], set()
    for position, entry in enumerate(entries):
        try:
            image_id, (width, height), boxes, labels, relations = _parse_entry(entry)
        except ValueError as error:
            field, _, message = str(error).partition(": ")
            image_id = entry.get("img_fn") if isinstance(entry, dict) else None
            log.report(kinds.FORMAT, split_file, image_id, f"[{position}].{field}", message)
            continue
        if image_id in seen:
            log.report(kinds.FORMAT, split_file, image_id, f"[{position}].img_fn", "image appears twice")
            continue
        seen.add(image_id)
        if max_objects is not None and len(boxes) > max_objects:
            continue
        try:
            image_path = image_path_inside(root / "images", f"{image_id}.jpg")
        except ValueError as error:
            log.report(kinds.UNSAFE_PATH, split_file, image_id, f"[{position}].img_fn", str(error))
            continue
        if add_one_pixel:
            boxes[:, 2:] += 1
        records.append(
            SceneGraphRecord(
                image_id=image_id,
                image_path=image_path,
                width=width,
                height=height,
                boxes=boxes,
                labels=labels,
                relations=remove_duplicate_triplets(relations) if remove_duplicates else relations,
            )
        )
    return SceneGraphSplit(
        records=records,
        class_names=class_names,
        predicate_names=predicate_names,
        layout=NAME,
        root=root,
        split=split,
        annotation_file=split_file,
        relation_file=split_file,
        file_index_base=0,
        options={
            "add_one_pixel": add_one_pixel,
            "max_objects": max_objects,
            "filter_duplicate_rels": remove_duplicates,
        },
    )
