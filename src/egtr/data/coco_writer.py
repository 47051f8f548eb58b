"""Writer of the COCO/RelTR layout, so that any dataset (or the synthetic world) becomes a custom dataset.

Output: OUT/images/, OUT/<split>.json for each split given, OUT/rel.json (format in
docs/custom-dataset.md and in `egtr.data.coco_relations`).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from egtr.boxes import xyxy_to_xywh_array
from egtr.data.coco_relations import IMAGE_DIR, RELATION_FILE, SPLITS
from egtr.data.record import SceneGraphRecord, SceneGraphSplit
from egtr.files import write_text


def _coco_image_ids(records: Sequence[SceneGraphRecord]) -> list[int]:
    """The records' own ids when all are distinct decimal integers, else 1..n in record order."""
    ids = [r.image_id for r in records]
    if all(i.isdecimal() for i in ids) and len(set(map(int, ids))) == len(ids):
        return [int(i) for i in ids]
    return list(range(1, len(ids) + 1))


class _ImagePlacer:
    """Gives each record a file name under OUT/images, copying the file there when asked."""

    def __init__(self, image_dir: Path, copy_images: bool):
        self.image_dir = image_dir
        self.resolved_image_dir = image_dir.resolve()
        self.copy_images = copy_images
        self.sources: dict[str, Path] = {}

    def file_name(self, record: SceneGraphRecord) -> str:
        return self._copied(record) if self.copy_images else self._in_place(record)

    def _in_place(self, record: SceneGraphRecord) -> str:
        """The path relative to OUT/images (compared as written first, resolved only if that fails)."""
        try:
            return record.image_path.relative_to(self.image_dir).as_posix()
        except ValueError:
            pass
        try:
            return record.image_path.resolve().relative_to(self.resolved_image_dir).as_posix()
        except ValueError as error:
            raise ValueError(
                f"image {record.image_id}: {record.image_path} is not under {self.image_dir}; "
                "pass copy_images=True to copy it there"
            ) from error

    def _copied(self, record: SceneGraphRecord) -> str:
        name = record.image_path.name
        source = record.image_path.resolve()
        if self.sources.setdefault(name, source) != source:
            raise ValueError(
                f"image {record.image_id}: file name {name} is used by both {self.sources[name]} and {source}"
            )
        destination = self.image_dir / name
        if not destination.exists() or not destination.samefile(source):
            if not source.is_file():
                raise FileNotFoundError(f"image {record.image_id}: {record.image_path} does not exist")
            shutil.copyfile(source, destination)
        return name


def _split_json(
    records: Sequence[SceneGraphRecord], class_names: list[str], placer: _ImagePlacer, next_annotation_id: int
) -> tuple[dict, dict[str, list], int]:
    """(COCO json of the split, its rel.json entry, next free annotation id)."""
    images, annotations, relations = [], [], {}
    for coco_id, record in zip(_coco_image_ids(records), records):
        images.append(
            {
                "id": coco_id,
                "file_name": placer.file_name(record),
                "width": record.width,
                "height": record.height,
            }
        )
        xywh = xyxy_to_xywh_array(record.boxes.astype(np.float64))
        for box, label in zip(xywh.tolist(), record.labels.tolist()):
            annotations.append(
                {
                    "id": next_annotation_id,
                    "image_id": coco_id,
                    "category_id": label + 1,
                    "bbox": box,
                    "area": box[2] * box[3],
                    "iscrowd": 0,
                }
            )
            next_annotation_id += 1
        relations[str(coco_id)] = (record.relations + np.array([0, 0, 1])).tolist()
    categories = [{"id": index + 1, "name": name} for index, name in enumerate(class_names)]
    return (
        {"images": images, "annotations": annotations, "categories": categories},
        relations,
        next_annotation_id,
    )


def write_coco_dataset(
    out_dir: Path | str,
    splits: dict[str, SceneGraphSplit | Sequence[SceneGraphRecord]],
    class_names: list[str],
    predicate_names: list[str],
    copy_images: bool = True,
) -> Path:
    """Write `splits` ({"train"|"val"|"test": split or records}) as a COCO/RelTR-layout dataset in `out_dir`.

    Image ids are kept when all of a split's ids are distinct decimal integers, otherwise numbered 1..n.
    With `copy_images` every image is copied to OUT/images/<its file name> (file names must be unique);
    without, every image must already lie under OUT/images. Returns `out_dir`.
    """
    out_dir = Path(out_dir)
    unknown = sorted(set(splits) - set(SPLITS))
    if unknown:
        raise ValueError(f"split names must be among {', '.join(SPLITS)}, got {', '.join(unknown)}")
    image_dir = out_dir / IMAGE_DIR
    image_dir.mkdir(parents=True, exist_ok=True)
    placer = _ImagePlacer(image_dir, copy_images)
    relation_json: dict[str, object] = {}
    next_annotation_id = 1
    for split, records in splits.items():
        records = records.records if isinstance(records, SceneGraphSplit) else records
        coco, relation_json[split], next_annotation_id = _split_json(
            records, class_names, placer, next_annotation_id
        )
        _dump(coco, out_dir / f"{split}.json")
    relation_json["rel_categories"] = ["__background__", *predicate_names]
    _dump(relation_json, out_dir / RELATION_FILE)
    return out_dir


def _dump(value: object, path: Path) -> None:
    # json.dumps uses the C encoder; json.dump to a file would use the much slower pure-Python one
    write_text(path, json.dumps(value, separators=(",", ":")))
