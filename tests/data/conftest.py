"""Tiny datasets written by the tests in each on-disk layout, with the layouts' real field names.

The writers here are independent of the library's readers and writer: they encode the published formats
directly, so reading their output back checks the readers against the formats.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import h5py
import numpy as np
import pytest
from PIL import Image

from egtr.data import SceneGraphRecord

CLASS_NAMES = ["person", "horse", "hat", "grass"]
PREDICATE_NAMES = ["riding", "wearing", "on"]
# (width, height, boxes xyxy with even integer sides, labels, relations): exact in every layout,
# including SGB's 1024 scale (the longer side is 64, a power of two).
IMAGES = [
    (64, 48, [[2, 4, 30, 40], [20, 10, 60, 46], [4, 2, 12, 8]], [0, 1, 2], [[0, 1, 0], [0, 2, 1], [0, 1, 2]]),
    (48, 64, [[0, 0, 48, 20], [10, 30, 30, 60]], [3, 0], [[1, 0, 2]]),
    (64, 64, [[8, 8, 24, 24]], [1], []),
    (40, 64, [[2, 2, 10, 10], [12, 12, 36, 60]], [2, 0], [[1, 0, 1]]),
    (64, 32, [[0, 0, 64, 32], [30, 4, 50, 28]], [3, 1], [[1, 0, 2], [1, 0, 0]]),
    (64, 48, [[6, 6, 20, 40], [30, 6, 50, 44]], [0, 0], [[0, 1, 2], [1, 0, 2]]),
    (32, 64, [[4, 4, 28, 60]], [2], []),
]
SPLIT_OF_IMAGE = ["train", "train", "train", "val", "val", "test", "test"]


def write_image(path: Path, width: int, height: int, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


def truth_records(image_path_of, image_id_of) -> dict[str, list[SceneGraphRecord]]:
    """The IMAGES as records per split; paths and ids from the layout's conventions."""
    splits: dict[str, list[SceneGraphRecord]] = {"train": [], "val": [], "test": []}
    for index, (width, height, boxes, labels, relations) in enumerate(IMAGES):
        image_id = image_id_of(index)
        record = SceneGraphRecord(image_id, image_path_of(image_id), width, height, boxes, labels, relations)
        splits[SPLIT_OF_IMAGE[index]].append(record)
    return splits


def write_coco_layout(
    root: Path, splits: dict[str, list[SceneGraphRecord]], with_images: bool = True
) -> Path:
    """RelTR/EGTR COCO layout: images/, {split}.json, rel.json (1-based category and predicate ids)."""
    relations_json: dict = {"rel_categories": ["__background__", *PREDICATE_NAMES]}
    annotation_id = 100
    for split, records in splits.items():
        images, annotations, relations_json[split] = [], [], {}
        for record in records:
            image_id = int(record.image_id)
            file_name = record.image_path.name
            images.append(
                {"file_name": file_name, "height": record.height, "width": record.width, "id": image_id}
            )
            for (x0, y0, x1, y1), label in zip(record.boxes.tolist(), record.labels.tolist()):
                annotations.append(
                    {
                        "area": (x1 - x0) * (y1 - y0),
                        "bbox": [x0, y0, x1 - x0, y1 - y0],
                        "category_id": label + 1,
                        "id": annotation_id,
                        "image_id": image_id,
                        "iscrowd": 0,
                    }
                )
                annotation_id += 1
            relations_json[split][str(image_id)] = [[s, o, p + 1] for s, o, p in record.relations.tolist()]
            if with_images:
                write_image(root / "images" / file_name, record.width, record.height, seed=image_id)
        categories = [
            {"supercategory": name, "id": i + 1, "name": name} for i, name in enumerate(CLASS_NAMES)
        ]
        coco = {"images": images, "annotations": annotations, "categories": categories}
        (root / f"{split}.json").write_text(json.dumps(coco))
    (root / "rel.json").write_text(json.dumps(relations_json))
    return root


def write_sgb_layout(
    root: Path,
    splits: dict[str, list[SceneGraphRecord]],
    extra_image_data: list[dict] = (),
    names: tuple[str, str] = ("VG-SGG-with-attri.h5", "VG-SGG-dicts-with-attri.json"),
) -> Path:
    """Scene-Graph-Benchmark layout. Val images are written first among the train-flagged images (SGB's val
    is the first num_val_images of them); `extra_image_data` entries are appended to image_data.json."""
    ordered = [(r, 0) for r in splits.get("val", [])] + [(r, 0) for r in splits.get("train", [])]
    ordered += [(r, 2) for r in splits.get("test", [])]
    per_image = {k: [] for k in ("split", "first_box", "last_box", "first_rel", "last_rel")}
    labels, boxes_1024, pairs, predicates, image_data = [], [], [], [], []
    for record, flag in ordered:
        first_box, scale = len(labels), 1024 / max(record.width, record.height)
        per_image["split"].append(flag)
        per_image["first_box"].append(first_box if record.num_objects else -1)
        per_image["last_box"].append(first_box + record.num_objects - 1 if record.num_objects else -1)
        has_relations = record.num_relations > 0
        per_image["first_rel"].append(len(pairs) if has_relations else -1)
        per_image["last_rel"].append(len(pairs) + record.num_relations - 1 if has_relations else -1)
        for (x0, y0, x1, y1), label in zip(record.boxes.tolist(), record.labels.tolist()):
            boxes_1024.append(
                [(x0 + x1) / 2 * scale, (y0 + y1) / 2 * scale, (x1 - x0) * scale, (y1 - y0) * scale]
            )
            labels.append([label + 1])
        for s, o, p in record.relations.tolist():
            pairs.append([first_box + s, first_box + o])
            predicates.append([p + 1])
        image_data.append(
            {
                "width": record.width,
                "url": "https://example.org/x.jpg",
                "height": record.height,
                "image_id": int(record.image_id),
                "coco_id": None,
                "flickr_id": None,
                "anti_prop": 0.0,
            }
        )
        write_image(record.image_path, record.width, record.height, seed=int(record.image_id))
    with h5py.File(root / names[0], "w") as h5:
        h5["split"] = np.array(per_image["split"], dtype=np.int32)
        for key in ("first_box", "last_box", "first_rel", "last_rel"):
            h5[f"img_to_{key}"] = np.array(per_image[key], dtype=np.int32)
        h5["labels"] = np.array(labels, dtype=np.int64).reshape(-1, 1)
        h5["boxes_1024"] = np.array(boxes_1024, dtype=np.int32).reshape(-1, 4)
        h5["boxes_512"] = (np.array(boxes_1024, dtype=np.int32).reshape(-1, 4) // 2).astype(np.int32)
        h5["attributes"] = np.zeros((len(labels), 10), dtype=np.int64)
        h5["relationships"] = np.array(pairs, dtype=np.int32).reshape(-1, 2)
        h5["predicates"] = np.array(predicates, dtype=np.int64).reshape(-1, 1)
    dicts = {
        "idx_to_label": {str(i + 1): n for i, n in enumerate(CLASS_NAMES)},
        "label_to_idx": {n: i + 1 for i, n in enumerate(CLASS_NAMES)},
        "idx_to_predicate": {str(i + 1): n for i, n in enumerate(PREDICATE_NAMES)},
        "predicate_to_idx": {n: i + 1 for i, n in enumerate(PREDICATE_NAMES)},
        "attribute_to_idx": {"white": 1},
        "idx_to_attribute": {"1": "white"},
    }
    (root / names[1]).write_text(json.dumps(dicts))
    (root / "image_data.json").write_text(json.dumps(image_data + list(extra_image_data)))
    return root


def write_open_images_layout(root: Path, splits: dict[str, list[SceneGraphRecord]]) -> Path:
    """PySGG Open Images layout; boxes are written 1 px smaller so that the official +1 restores them."""
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    categories = {"obj": CLASS_NAMES, "rel": PREDICATE_NAMES}
    (root / "annotations" / "categories_dict.json").write_text(json.dumps(categories))
    for split, records in splits.items():
        entries = []
        for record in records:
            boxes = record.boxes.astype(np.float64)
            boxes[:, 2:] -= 1
            entries.append(
                {
                    "img_fn": record.image_id,
                    "img_size": [record.width, record.height],
                    "bbox": boxes.tolist(),
                    "det_labels": record.labels.tolist(),
                    "rel": record.relations.tolist(),
                }
            )
            write_image(record.image_path, record.width, record.height, seed=len(entries))
        (root / "annotations" / f"vrd-{split}-anno.json").write_text(json.dumps(entries))
    return root


def coco_truth(root: Path) -> dict[str, list[SceneGraphRecord]]:
    return truth_records(lambda i: root / "images" / f"{i}.png", lambda index: str(10 + 3 * index))


def sgb_truth(root: Path) -> dict[str, list[SceneGraphRecord]]:
    return truth_records(lambda i: root / "VG_100K" / f"{i}.jpg", lambda index: str(1 + index))


def open_images_truth(root: Path) -> dict[str, list[SceneGraphRecord]]:
    return truth_records(lambda i: root / "images" / f"{i}.jpg", lambda index: f"0a{index:02d}f3c")


@pytest.fixture
def layouts() -> SimpleNamespace:
    """Writers and ground truth of the tiny datasets, for tests to build what they need in tmp_path."""
    return SimpleNamespace(
        class_names=CLASS_NAMES,
        predicate_names=PREDICATE_NAMES,
        write_image=write_image,
        write_coco=write_coco_layout,
        write_sgb=write_sgb_layout,
        write_open_images=write_open_images_layout,
        coco_truth=coco_truth,
        sgb_truth=sgb_truth,
        open_images_truth=open_images_truth,
    )
