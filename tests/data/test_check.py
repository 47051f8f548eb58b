"""`check_dataset`: every problem kind is produced by a fixture and reported with file, image id and field."""

from __future__ import annotations

import json

import h5py
import pytest
from PIL import Image

from egtr.data import NotADatasetError
from egtr.data import problems as kinds
from egtr.data.check import check_dataset


def edit_json(path, change):
    value = json.loads(path.read_text())
    change(value)
    path.write_text(json.dumps(value))


def annotations_of(coco, image_id):
    return [a for a in coco["annotations"] if a["image_id"] == image_id]


def break_coco_dataset(root):
    """Inject one instance of every problem kind into a clean COCO-layout dataset (ids in the comments)."""

    def train(coco):
        first, second = annotations_of(coco, 10)[:2]
        first["bbox"] = [50, 4, 30, 20]  # image 10 boxes[0]: reaches x = 80 in a 64 px wide image
        second["bbox"] = [20, 10, 0, 36]  # image 10 boxes[1]: no width

    def val(coco):
        annotations_of(coco, 22)[1]["category_id"] = 99  # image 22 labels[1]

    def test(coco):
        annotations_of(coco, 28)[0]["bbox"] = [1, 2, 3]  # image 28 (annotations[2] of the file): malformed
        coco["images"].append({"id": 31, "file_name": "../outside.png", "width": 8, "height": 8})  # leaves

    def relations(rel):
        rel["val"]["22"].append(rel["val"]["22"][0])  # image 22 relations[2] repeats relations[0]
        rel["test"]["25"] += [[0, 5, 1], [1, 0, 9]]  # image 25 relations[2] index, relations[3] predicate
        rel["test"]["999"] = []  # no such image

    edit_json(root / "train.json", train)
    edit_json(root / "val.json", val)
    edit_json(root / "test.json", test)
    edit_json(root / "rel.json", relations)
    (root / "images" / "13.png").unlink()
    (root / "images" / "16.png").write_bytes(b"this is not an image")
    Image.new("RGB", (30, 30)).save(root / "images" / "19.png")
    (root / "outside.png").write_bytes(b"not an image: opening it would add an unreadable_image problem")


EXPECTED_COCO_PROBLEMS = {
    (kinds.BOX_OUTSIDE_IMAGE, "train.json", "10", "boxes[0]"),
    (kinds.EMPTY_BOX, "train.json", "10", "boxes[1]"),
    (kinds.MISSING_IMAGE, "13.png", "13", "image file"),
    (kinds.UNREADABLE_IMAGE, "16.png", "16", "image file"),
    (kinds.SIZE_MISMATCH, "val.json", "19", "width/height"),
    (kinds.UNKNOWN_CLASS, "val.json", "22", "labels[1]"),
    (kinds.DUPLICATE_TRIPLET, "rel.json", "22", "relations[2]"),
    (kinds.RELATION_INDEX_OUT_OF_RANGE, "rel.json", "25", "relations[2]"),
    (kinds.UNKNOWN_PREDICATE, "rel.json", "25", "relations[3]"),
    (kinds.FORMAT, "test.json", "28", "annotations[2].bbox"),
    (kinds.FORMAT, "rel.json", "999", 'test["999"]'),
    (kinds.UNSAFE_PATH, "test.json", "31", "images[2].file_name"),
}


def located(problems):
    return {(p.kind, p.file.rsplit("/", 1)[-1], p.image_id, p.field) for p in problems}


def test_every_problem_kind_is_found_with_its_location(tmp_path, layouts):
    layouts.write_coco(tmp_path, layouts.coco_truth(tmp_path))
    assert check_dataset(tmp_path).problems == []
    break_coco_dataset(tmp_path)
    report = check_dataset(tmp_path)
    assert located(report.problems) == EXPECTED_COCO_PROBLEMS
    assert {p.kind for p in report.problems} == set(kinds.PROBLEM_KINDS)
    size_problem = next(p for p in report.problems if p.kind == kinds.SIZE_MISMATCH)
    assert "annotated 40x64, image file is 30x30" in size_problem.message


def test_summary_counts_each_split(tmp_path, layouts):
    truth = layouts.coco_truth(tmp_path)
    layouts.write_coco(tmp_path, truth)
    report = check_dataset(tmp_path, images=False)
    assert [s.split for s in report.splits] == ["train", "val", "test"]
    for summary in report.splits:
        records = truth[summary.split]
        assert summary.images == len(records)
        assert summary.boxes == sum(r.num_objects for r in records)
        assert summary.relations == sum(r.num_relations for r in records)
        assert summary.images_without_relations == sum(r.num_relations == 0 for r in records)
        assert sum(summary.class_counts.values()) == summary.boxes
        assert list(summary.predicate_counts) == layouts.predicate_names
    train = report.splits[0]
    assert train.class_counts == {"person": 2, "horse": 2, "hat": 1, "grass": 1}
    assert train.predicate_counts == {"riding": 1, "wearing": 1, "on": 2}


def test_options_of_check(tmp_path, layouts):
    layouts.write_coco(tmp_path, layouts.coco_truth(tmp_path))
    break_coco_dataset(tmp_path)
    no_images = check_dataset(tmp_path, splits=["train"], images=False)
    assert {p.kind for p in no_images.problems} == {kinds.BOX_OUTSIDE_IMAGE, kinds.EMPTY_BOX}
    tolerant = check_dataset(tmp_path, splits=["train"], images=False, box_tolerance=20)
    assert {p.kind for p in tolerant.problems} == {kinds.EMPTY_BOX}


def test_truncated_image_needs_decoding_to_be_found(tmp_path, layouts):
    layouts.write_coco(tmp_path, layouts.coco_truth(tmp_path))
    path = tmp_path / "images" / "10.png"
    Image.new("RGB", (64, 48), (200, 10, 10)).save(path)
    path.write_bytes(path.read_bytes()[:-40])
    assert check_dataset(tmp_path, splits=["train"]).problems == []
    decoded = check_dataset(tmp_path, splits=["train"], decode=True)
    assert located(decoded.problems) == {(kinds.UNREADABLE_IMAGE, "10.png", "10", "image file")}


def test_unparsable_split_is_one_problem_and_the_others_are_still_checked(tmp_path, layouts):
    layouts.write_coco(tmp_path, layouts.coco_truth(tmp_path))
    (tmp_path / "val.json").write_text("[1, 2")
    report = check_dataset(tmp_path)
    assert located(report.problems) == {(kinds.FORMAT, "val.json", "", "(file)")}
    assert [(s.split, s.readable) for s in report.splits] == [("train", True), ("val", False), ("test", True)]


def test_open_images_problems(tmp_path, layouts):
    layouts.write_open_images(tmp_path, layouts.open_images_truth(tmp_path))

    def corrupt(entries):
        entries[0]["rel"].append(entries[0]["rel"][0])  # duplicates are reported, not filtered, by check
        entries[1]["bbox"][0] = [-5, 0, 10, 10]
        entries[2]["img_size"] = "big"

    edit_json(tmp_path / "annotations" / "vrd-train-anno.json", corrupt)
    (tmp_path / "images" / "0a01f3c.jpg").unlink()
    report = check_dataset(tmp_path, splits=["train"])
    assert located(report.problems) == {
        (kinds.DUPLICATE_TRIPLET, "vrd-train-anno.json", "0a00f3c", "relations[3]"),
        (kinds.BOX_OUTSIDE_IMAGE, "vrd-train-anno.json", "0a01f3c", "boxes[0]"),
        (kinds.MISSING_IMAGE, "0a01f3c.jpg", "0a01f3c", "image file"),
        (kinds.FORMAT, "vrd-train-anno.json", "0a02f3c", "[2].img_size"),
    }


def test_sgb_problems(tmp_path, layouts):
    layouts.write_sgb(tmp_path, layouts.sgb_truth(tmp_path))
    with h5py.File(tmp_path / "VG-SGG-with-attri.h5", "a") as h5:
        labels = h5["labels"][...]
        labels[1, 0] = 77  # first val image (id 4), box 1
        h5["labels"][...] = labels
    (tmp_path / "VG_100K" / "6.jpg").unlink()
    report = check_dataset(tmp_path)
    assert located(report.problems) == {
        (kinds.UNKNOWN_CLASS, "VG-SGG-with-attri.h5", "4", "labels[1]"),
        (kinds.MISSING_IMAGE, "6.jpg", "6", "image file"),
    }
    message = next(p.message for p in report.problems if p.kind == kinds.UNKNOWN_CLASS)
    assert "class 76 (file value 77)" in message


def test_sgb_missing_field_is_reported(tmp_path, layouts):
    layouts.write_sgb(tmp_path, layouts.sgb_truth(tmp_path))
    with h5py.File(tmp_path / "VG-SGG-with-attri.h5", "a") as h5:
        del h5["predicates"]
    report = check_dataset(tmp_path, splits=["test"])
    assert located(report.problems) == {(kinds.FORMAT, "VG-SGG-with-attri.h5", "", "predicates")}


def test_not_a_dataset(tmp_path):
    with pytest.raises(NotADatasetError):
        check_dataset(tmp_path)
