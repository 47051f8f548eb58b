"""Reader of Visual Genome in the Scene-Graph-Benchmark (neural-motifs) HDF5 layout.

    ROOT/VG-SGG-with-attri.h5          split [N] (0 train, 2 test), img_to_first_box/img_to_last_box [N],
                                       img_to_first_rel/img_to_last_rel [N] (-1 when none), labels [B,1]
                                       (1-based), boxes_1024 [B,4] (cx, cy, w, h with the longer image side
                                       at 1024), relationships [R,2] (absolute box indices), predicates
                                       [R,1] (1-based)
    ROOT/VG-SGG-dicts-with-attri.json  idx_to_label, idx_to_predicate ({"1": name, ...})
    ROOT/image_data.json               [{image_id, width, height, ...}] aligned with the HDF5 images
    ROOT/VG_100K/<image_id>.jpg        (option `image_dir`)

The neural-motifs names `VG-SGG.h5` and `VG-SGG-dicts.json` are accepted too. As in SGB: images without
boxes are dropped; `filter_empty_rels` drops images without relations; val is the FIRST `num_val_images`
images of the train split and train the rest; `filter_non_overlap` keeps only relations whose boxes
intersect (+1-pixel convention, at the 1024 scale) and drops images left without any. Boxes are converted
as SGB does with its integer arrays: x0 = trunc(cx - w/2), x1 = x0 + w, then scaled by max(W, H)/1024.
image_data.json of the public release has 4 entries more than the HDF5 file (ids 1592, 1722, 4616 and
4617, corrupted images that SGB skips); they are left out when, and only when, that makes the lengths
agree. Unlike SGB, images whose file is missing are kept (`egtr data check` reports them).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from egtr.data import problems as kinds
from egtr.data.image_paths import image_path_inside
from egtr.data.jsonfile import format_error, read_json, require
from egtr.data.problems import ProblemLog
from egtr.data.record import SceneGraphRecord, SceneGraphSplit

NAME = "sgb-h5"
SPLITS = ("train", "val", "test")
FILE_SETS = (
    ("VG-SGG-with-attri.h5", "VG-SGG-dicts-with-attri.json", "image_data.json"),
    ("VG-SGG.h5", "VG-SGG-dicts.json", "image_data.json"),
)
EXPECTED = "VG-SGG-with-attri.h5, VG-SGG-dicts-with-attri.json, image_data.json, VG_100K/"
CORRUPTED_IMAGE_IDS = frozenset({1592, 1722, 4616, 4617})
BOX_SCALE = 1024
SPLIT_FLAGS = {"train": 0, "val": 0, "test": 2}
PER_IMAGE_FIELDS = ("split", "img_to_first_box", "img_to_last_box", "img_to_first_rel", "img_to_last_rel")


def _files(root: Path) -> tuple[Path, Path, Path] | None:
    for names in FILE_SETS:
        paths = tuple(root / name for name in names)
        if all(path.is_file() for path in paths):
            return paths
    return None


def matches(root: Path) -> bool:
    return _files(root) is not None


def available_splits(root: Path) -> list[str]:
    return list(SPLITS)


def _names(dicts: dict, key: str, file: Path) -> list[str]:
    """{"1": name, ...} -> [name, ...] in index order; keys must be 1..C."""
    mapping = require(dicts, key, file, key, dict)
    expected = [str(i) for i in range(1, len(mapping) + 1)]
    if sorted(mapping, key=lambda k: (len(k), k)) != expected:
        raise format_error(file, key, f"keys must be the strings 1..{len(mapping)}")
    names = [mapping[k] for k in expected]
    if not all(isinstance(name, str) for name in names):
        raise format_error(file, key, "values must be names (strings)")
    return names


def _read_h5(file: Path) -> dict[str, np.ndarray]:
    """The HDF5 fields this reader uses, shape-checked and flattened where they are [n,1]."""
    import h5py

    columns = {"labels": 1, "boxes_1024": 4, "relationships": 2, "predicates": 1}
    try:
        with h5py.File(file, "r") as h5:
            missing = [name for name in (*PER_IMAGE_FIELDS, *columns) if name not in h5]
            if missing:
                raise format_error(file, missing[0], f"HDF5 dataset missing (also missing: {missing[1:]})")
            arrays = {name: h5[name][...] for name in (*PER_IMAGE_FIELDS, *columns)}
    except OSError as error:
        raise format_error(file, "(file)", f"not a readable HDF5 file: {error}") from error
    for name, width in columns.items():
        array = arrays[name]
        if array.ndim == 1 and width == 1:
            array = array[:, None]
        if array.ndim != 2 or array.shape[1] != width:
            raise format_error(file, name, f"expected shape [n,{width}], got {list(array.shape)}")
        arrays[name] = array[:, 0] if width == 1 else array
    num_images = len(arrays["split"])
    for name in PER_IMAGE_FIELDS:
        if arrays[name].shape != (num_images,):
            raise format_error(file, name, f"expected shape [{num_images}] like 'split'")
    if len(arrays["relationships"]) != len(arrays["predicates"]):
        raise format_error(file, "predicates", "must have one entry per row of 'relationships'")
    if len(arrays["labels"]) != len(arrays["boxes_1024"]):
        raise format_error(file, "labels", "must have one entry per row of 'boxes_1024'")
    return arrays


def _aligned_image_data(entries: list, num_images: int, file: Path) -> list[Any]:
    """image_data.json entries aligned with the HDF5 images (see the module doc for the 4 extras)."""
    if len(entries) == num_images:
        return entries
    kept = [e for e in entries if not (isinstance(e, dict) and e.get("image_id") in CORRUPTED_IMAGE_IDS)]
    if len(kept) != num_images:
        raise format_error(file, "(file)", f"{len(entries)} entries for {num_images} images in the HDF5 file")
    return kept


def _selected_images(arrays: dict, split: str, num_val_images: int, filter_empty_rels: bool) -> np.ndarray:
    """HDF5 image indices of `split`, in file order (SGB's load_graphs)."""
    mask = (arrays["split"] == SPLIT_FLAGS[split]) & (arrays["img_to_first_box"] >= 0)
    if filter_empty_rels:
        mask &= arrays["img_to_first_rel"] >= 0
    selected = np.flatnonzero(mask)
    if split == "val":
        return selected[:num_val_images]
    if split == "train":
        return selected[num_val_images:]
    return selected


def _corner_boxes(boxes_cxcywh: np.ndarray) -> np.ndarray:
    """[B,4] (cx, cy, w, h) -> float64 (x0, y0, x1, y1), same scale, truncated like SGB's int arrays."""
    boxes = boxes_cxcywh.astype(np.float64)
    top_left = boxes[:, :2] - boxes[:, 2:] / 2
    if np.issubdtype(boxes_cxcywh.dtype, np.integer):
        top_left = np.trunc(top_left)
    return np.concatenate((top_left, top_left + boxes[:, 2:]), axis=1)


def _keeps_overlapping(boxes: np.ndarray, relations: np.ndarray) -> np.ndarray:
    """bool [T]: subject and object boxes intersect with the +1-pixel convention (SGB boxlist_iou > 0).

    Relations with box indices out of range are kept, for the index check to report them.
    """
    in_range = ((relations[:, :2] >= 0) & (relations[:, :2] < len(boxes))).all(axis=1)
    pairs = np.where(in_range[:, None], relations[:, :2], 0)
    subject, object_ = boxes[pairs[:, 0]], boxes[pairs[:, 1]]
    sides = np.minimum(subject[:, 2:], object_[:, 2:]) - np.maximum(subject[:, :2], object_[:, :2]) + 1
    return (sides > 0).all(axis=1) | ~in_range


def _image_size(entry: Any, file: Path, position: int, log: ProblemLog) -> tuple[str, int, int] | None:
    fields = ("image_id", "width", "height")
    image_id, width, height = (entry.get(k) if isinstance(entry, dict) else None for k in fields)
    if image_id is None or not all(isinstance(v, int) and v > 0 for v in (width, height)):
        log.report(kinds.FORMAT, file, image_id, f"[{position}]", "needs image_id and positive width, height")
        return None
    return str(image_id), width, height


def read_sgb_split(
    root: Path,
    split: str,
    log: ProblemLog,
    *,
    num_val_images: int = 5000,
    filter_empty_rels: bool = True,
    filter_non_overlap: bool = False,
    image_dir: str = "VG_100K",
) -> SceneGraphSplit:
    """Read one split of an SGB-HDF5 dataset (options as in SGB's VGDataset; see the module doc)."""
    h5_file, dict_file, image_file = _files(root)
    dicts = read_json(dict_file, dict)
    class_names = _names(dicts, "idx_to_label", dict_file)
    predicate_names = _names(dicts, "idx_to_predicate", dict_file)
    arrays = _read_h5(h5_file)
    image_data = _aligned_image_data(read_json(image_file, list), len(arrays["split"]), image_file)
    boxes_1024 = _corner_boxes(arrays["boxes_1024"])
    labels = arrays["labels"].astype(np.int64) - 1
    relation_pairs = arrays["relationships"].astype(np.int64)
    predicates = arrays["predicates"].astype(np.int64) - 1

    records = []
    for index in _selected_images(arrays, split, num_val_images, filter_empty_rels).tolist():
        size = _image_size(image_data[index], image_file, index, log)
        if size is None:
            continue
        image_id, width, height = size
        try:
            image_path = image_path_inside(root / image_dir, f"{image_id}.jpg")
        except ValueError as error:
            log.report(kinds.UNSAFE_PATH, image_file, image_id, f"[{index}].image_id", str(error))
            continue
        first_box, last_box = int(arrays["img_to_first_box"][index]), int(arrays["img_to_last_box"][index])
        first_rel, last_rel = int(arrays["img_to_first_rel"][index]), int(arrays["img_to_last_rel"][index])
        image_boxes = boxes_1024[first_box : last_box + 1]
        relations = np.zeros((0, 3), dtype=np.int64)
        if first_rel >= 0:
            relations = np.column_stack(
                (relation_pairs[first_rel : last_rel + 1] - first_box, predicates[first_rel : last_rel + 1])
            )
        if filter_non_overlap:
            relations = relations[_keeps_overlapping(image_boxes, relations)]
            if len(relations) == 0:
                continue
        records.append(
            SceneGraphRecord(
                image_id=image_id,
                image_path=image_path,
                width=width,
                height=height,
                boxes=image_boxes / BOX_SCALE * max(width, height),
                labels=labels[first_box : last_box + 1],
                relations=relations,
            )
        )
    return SceneGraphSplit(
        records=records,
        class_names=class_names,
        predicate_names=predicate_names,
        layout=NAME,
        root=root,
        split=split,
        annotation_file=h5_file,
        relation_file=h5_file,
        file_index_base=1,
        options={
            "num_val_images": num_val_images,
            "filter_empty_rels": filter_empty_rels,
            "filter_non_overlap": filter_non_overlap,
            "image_dir": image_dir,
        },
    )
