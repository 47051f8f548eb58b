"""Reader of the COCO/RelTR layout (Visual Genome as RelTR and EGTR ship it, and custom data).

    ROOT/images/<file_name>
    ROOT/{train,val,test}.json   COCO: images{id,file_name,width,height},
                                 annotations{id,image_id,bbox (x,y,w,h),category_id (1-based),...},
                                 categories{id (1..C contiguous),name}
    ROOT/rel.json                {"train": {"<image id>": [[subject, object, predicate (1-based)], ...]},
                                  "val": {...}, "test": {...}, "rel_categories": ["__background__", ...]}

Subject and object index the image's annotations in file order. Images come in increasing id order
(as torchvision's CocoDetection lists them, architecture.md §10); an image without an entry in rel.json
has no relations. All annotations are kept, crowd ones included, so that relation indices stay aligned.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from egtr.boxes import xywh_to_xyxy_array
from egtr.data import problems as kinds
from egtr.data.image_paths import image_path_inside
from egtr.data.jsonfile import format_error, read_json, require, string_list
from egtr.data.problems import ProblemLog
from egtr.data.record import SceneGraphRecord, SceneGraphSplit

NAME = "coco"
SPLITS = ("train", "val", "test")
RELATION_FILE = "rel.json"
IMAGE_DIR = "images"
EXPECTED = "images/, train.json|val.json|test.json (COCO), rel.json"


def matches(root: Path) -> bool:
    return (root / RELATION_FILE).is_file() and any((root / f"{s}.json").is_file() for s in SPLITS)


def available_splits(root: Path) -> list[str]:
    return [split for split in SPLITS if (root / f"{split}.json").is_file()]


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def class_names_from_categories(categories: Any, file: Path) -> list[str]:
    """Names ordered by category id, which must be exactly 1..C."""
    if not isinstance(categories, list) or not all(isinstance(c, dict) for c in categories):
        raise format_error(file, "categories", "expected a list of {id, name} objects")
    for position, category in enumerate(categories):
        require(category, "id", file, f"categories[{position}].id", int)
        require(category, "name", file, f"categories[{position}].name", str)
    ordered = sorted(categories, key=lambda c: c["id"])
    ids = [c["id"] for c in ordered]
    if ids != list(range(1, len(ids) + 1)):
        raise format_error(file, "categories", f"ids must be 1..{len(ids)} without gaps, got {ids[:10]}...")
    return [c["name"] for c in ordered]


def _parse_images(
    entries: list, file: Path, log: ProblemLog, image_dir: Path, broken: set[int]
) -> dict[int, tuple[Path, int, int]]:
    """image id -> (image path, width, height); broken entries are reported and left out, images whose
    file name leaves `image_dir` are reported and added to `broken`."""
    images: dict[int, tuple[Path, int, int]] = {}
    for position, entry in enumerate(entries):
        image_id = entry.get("id") if isinstance(entry, dict) else None
        where = f"images[{position}]"
        if not _is_int(image_id):
            log.report(kinds.FORMAT, file, image_id, f"{where}.id", "missing or not an integer")
            continue
        file_name, width, height = (entry.get(k) for k in ("file_name", "width", "height"))
        if not isinstance(file_name, str) or not file_name:
            log.report(kinds.FORMAT, file, image_id, f"{where}.file_name", "missing or not a string")
        elif not (_is_int(width) and _is_int(height) and width > 0 and height > 0):
            log.report(kinds.FORMAT, file, image_id, f"{where}.width/height", "missing or not positive ints")
        elif image_id in images:
            log.report(kinds.FORMAT, file, image_id, f"{where}.id", "image id appears twice")
        else:
            try:
                images[image_id] = (image_path_inside(image_dir, file_name), width, height)
            except ValueError as error:
                log.report(kinds.UNSAFE_PATH, file, image_id, f"{where}.file_name", str(error))
                images[image_id] = (image_dir, width, height)  # its annotations still parse
                broken.add(image_id)
    return images


def _annotation_columns(entries: list) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(image ids [A], category ids [A], bboxes [A,4] float64); raises on any malformed entry."""
    image_ids = np.array([a["image_id"] for a in entries], dtype=np.int64).reshape(-1)
    categories = np.array([a["category_id"] for a in entries], dtype=np.int64).reshape(-1)
    bboxes = np.array([a["bbox"] for a in entries], dtype=np.float64)
    if len(entries) == 0:
        bboxes = bboxes.reshape(0, 4)
    if bboxes.shape != (len(entries), 4):
        raise ValueError("bbox is not a list of 4 numbers everywhere")
    return image_ids, categories, bboxes


def _is_valid_annotation(entry: Any) -> tuple[bool, str, object]:
    """(valid, broken field, image id if readable) for one annotation."""
    if not isinstance(entry, dict):
        return False, "", None
    image_id = entry.get("image_id")
    if not _is_int(image_id):
        return False, "image_id", None
    if not _is_int(entry.get("category_id")):
        return False, "category_id", image_id
    bbox = entry.get("bbox")
    if not (
        isinstance(bbox, list)
        and len(bbox) == 4
        and all(isinstance(v, int | float) and not isinstance(v, bool) for v in bbox)
    ):
        return False, "bbox", image_id
    return True, "", image_id


def _parse_annotations(
    entries: list, file: Path, log: ProblemLog, broken_images: set[int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Columns of the valid annotations; broken ones are reported and their images marked broken."""
    try:
        return _annotation_columns(entries)
    except (KeyError, TypeError, ValueError, OverflowError):
        pass
    valid_entries = []
    for position, entry in enumerate(entries):
        valid, field, image_id = _is_valid_annotation(entry)
        if valid:
            valid_entries.append(entry)
            continue
        annotation_id = entry.get("id") if isinstance(entry, dict) else None
        log.report(
            kinds.FORMAT,
            file,
            image_id,
            f"annotations[{position}].{field}" if field else f"annotations[{position}]",
            f"missing or malformed (annotation id {annotation_id})",
        )
        if image_id is not None:
            broken_images.add(image_id)
    return _annotation_columns(valid_entries)


def _group_by_image(
    image_ids: np.ndarray, known: dict, file: Path, log: ProblemLog
) -> tuple[dict[int, tuple[int, int]], np.ndarray]:
    """image id -> (start, end) into the stable image-sorted order, and that order."""
    order = np.argsort(image_ids, kind="stable")
    unique, starts, counts = np.unique(image_ids[order], return_index=True, return_counts=True)
    spans = {}
    for image_id, start, count in zip(unique.tolist(), starts.tolist(), counts.tolist()):
        if image_id not in known:
            position = int(order[start])
            log.report(
                kinds.FORMAT,
                file,
                image_id,
                f"annotations[{position}].image_id",
                f"{count} annotation(s) refer to an image id that is not in 'images'",
            )
            continue
        spans[image_id] = (start, start + count)
    return spans, order


def _parse_relations(
    relations_by_image: dict, images: dict, file: Path, split: str, log: ProblemLog, broken: set[int]
) -> dict[int, np.ndarray]:
    """image id -> int64 [T,3] with 1-based predicates; malformed entries mark their image broken."""
    parsed = {}
    for key, entry in relations_by_image.items():
        where = f'{split}["{key}"]'
        image_id = int(key) if isinstance(key, str) and key.lstrip("-").isdigit() else None
        if image_id not in images:
            log.report(kinds.FORMAT, file, key, where, f"no image with this id in {split}.json")
            continue
        try:
            triplets = np.array(entry, dtype=np.int64)
        except (TypeError, ValueError, OverflowError):
            triplets = None
        if triplets is not None and triplets.size == 0:
            triplets = triplets.reshape(0, 3)
        if triplets is None or triplets.ndim != 2 or triplets.shape[1] != 3:
            log.report(kinds.FORMAT, file, key, where, "expected a list of [subject, object, predicate]")
            broken.add(image_id)
            continue
        parsed[image_id] = triplets
    return parsed


def read_coco_split(root: Path, split: str, log: ProblemLog) -> SceneGraphSplit:
    """Read one split of a COCO/RelTR-layout dataset (no options)."""
    split_file, relation_file = root / f"{split}.json", root / RELATION_FILE
    coco = read_json(split_file, dict)
    relation_json = read_json(relation_file, dict)
    class_names = class_names_from_categories(coco.get("categories"), split_file)
    background_and_predicates = require(
        relation_json, "rel_categories", relation_file, "rel_categories", list
    )
    predicate_names = string_list(background_and_predicates, relation_file, "rel_categories")[1:]
    image_entries = require(coco, "images", split_file, "images", list)
    annotation_entries = require(coco, "annotations", split_file, "annotations", list)
    relations_by_image = require(relation_json, split, relation_file, split, dict)

    image_dir = root / IMAGE_DIR
    broken: set[int] = set()
    images = _parse_images(image_entries, split_file, log, image_dir, broken)
    image_ids, categories, bboxes = _parse_annotations(annotation_entries, split_file, log, broken)
    spans, order = _group_by_image(image_ids, images, split_file, log)
    relations = _parse_relations(relations_by_image, images, relation_file, split, log, broken)
    labels_sorted = categories[order] - 1
    boxes_sorted = xywh_to_xyxy_array(bboxes[order]).astype(np.float32)
    no_relations = np.zeros((0, 3), dtype=np.int64)
    predicate_shift = np.array([0, 0, 1], dtype=np.int64)

    records = []
    for image_id in sorted(images):
        if image_id in broken:
            continue
        image_path, width, height = images[image_id]
        start, end = spans.get(image_id, (0, 0))
        records.append(
            SceneGraphRecord(
                image_id=str(image_id),
                image_path=image_path,
                width=width,
                height=height,
                boxes=boxes_sorted[start:end],
                labels=labels_sorted[start:end],
                relations=relations.get(image_id, no_relations) - predicate_shift,
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
        relation_file=relation_file,
        file_index_base=1,
    )
