"""Readers of the three layouts: tiny datasets written with the real field names read back to the records."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from egtr.data import DatasetError, NotADatasetError, detect_layout, load_dataset


def assert_same_records(actual, expected):
    assert [r.image_id for r in actual] == [r.image_id for r in expected]
    for got, want in zip(actual, expected):
        assert got == want, f"image {want.image_id}: {got} != {want}"
        assert (
            got.boxes.dtype == np.float32 and got.labels.dtype == np.int64 and got.relations.dtype == np.int64
        )


@pytest.mark.parametrize("split", ["train", "val", "test"])
def test_coco_layout_reads_back_to_the_records(tmp_path, layouts, split):
    truth = layouts.coco_truth(tmp_path)
    layouts.write_coco(tmp_path, truth)
    loaded = load_dataset(tmp_path, split)
    assert (loaded.layout, loaded.split, loaded.root) == ("coco", split, tmp_path)
    assert loaded.class_names == layouts.class_names and loaded.predicate_names == layouts.predicate_names
    assert_same_records(loaded.records, truth[split])


def test_coco_images_come_in_id_order_and_missing_rel_entries_mean_no_relations(tmp_path, layouts):
    truth = layouts.coco_truth(tmp_path)
    layouts.write_coco(tmp_path, truth)
    coco = json.loads((tmp_path / "train.json").read_text())
    coco["images"].reverse()
    (tmp_path / "train.json").write_text(json.dumps(coco))
    relations = json.loads((tmp_path / "rel.json").read_text())
    del relations["train"]["16"]  # image 16 has no relations in the truth
    (tmp_path / "rel.json").write_text(json.dumps(relations))
    assert_same_records(load_dataset(tmp_path, "train").records, truth["train"])


def test_coco_keeps_annotation_order_within_an_image(tmp_path, layouts):
    truth = layouts.coco_truth(tmp_path)
    layouts.write_coco(tmp_path, truth)
    coco = json.loads((tmp_path / "train.json").read_text())
    first_image = coco["images"][0]["id"]
    others = [a for a in coco["annotations"] if a["image_id"] != first_image]
    mine = [a for a in coco["annotations"] if a["image_id"] == first_image]
    coco["annotations"] = others[:1] + mine[:1] + others[1:] + mine[1:]  # interleaved, same relative order
    (tmp_path / "train.json").write_text(json.dumps(coco))
    assert_same_records(load_dataset(tmp_path, "train").records, truth["train"])


@pytest.mark.parametrize("split", ["train", "val", "test"])
def test_sgb_layout_reads_back_to_the_records(tmp_path, layouts, split):
    truth = layouts.sgb_truth(tmp_path)
    layouts.write_sgb(tmp_path, truth)
    loaded = load_dataset(tmp_path, split, num_val_images=2, filter_empty_rels=False)
    assert loaded.layout == "sgb-h5" and loaded.class_names == layouts.class_names
    assert loaded.predicate_names == layouts.predicate_names
    assert_same_records(loaded.records, truth[split])


def test_sgb_defaults_drop_images_without_relations_and_take_val_first(tmp_path, layouts):
    truth = layouts.sgb_truth(tmp_path)
    layouts.write_sgb(tmp_path, truth)
    with_relations = {s: [r for r in records if r.num_relations] for s, records in truth.items()}
    assert_same_records(load_dataset(tmp_path, "val", num_val_images=2).records, with_relations["val"])
    assert_same_records(load_dataset(tmp_path, "train", num_val_images=2).records, with_relations["train"])
    assert_same_records(load_dataset(tmp_path, "test").records, with_relations["test"])
    # default num_val_images=5000 takes every train-flagged image into val
    assert len(load_dataset(tmp_path, "train").records) == 0
    assert len(load_dataset(tmp_path, "val").records) == len(with_relations["val"] + with_relations["train"])


def test_sgb_box_conversion_truncates_like_sgb_and_rescales(tmp_path, layouts):
    truth = layouts.sgb_truth(tmp_path)
    layouts.write_sgb(tmp_path, truth)
    with h5py.File(tmp_path / "VG-SGG-with-attri.h5", "a") as h5:
        boxes = h5["boxes_1024"][...]
        boxes[0] = [101, 200, 31, 64]  # cx - w/2 = 85.5 -> 85 (int), x1 = 85 + 31 = 116
        h5["boxes_1024"][...] = boxes
    record = load_dataset(tmp_path, "val", num_val_images=2).records[0]
    scale = max(record.width, record.height) / 1024
    np.testing.assert_allclose(record.boxes[0], np.array([85, 168, 116, 232]) * scale, rtol=1e-6)


def test_sgb_filter_non_overlap_keeps_intersecting_relations_only(tmp_path, layouts):
    truth = layouts.sgb_truth(tmp_path)
    layouts.write_sgb(tmp_path, truth)
    loaded = load_dataset(tmp_path, "test", filter_empty_rels=False, filter_non_overlap=True)
    # image 6's relations are between disjoint boxes (6..20 and 30..50 in x): the image is dropped,
    # image 7 has no relation at all: dropped too (as SGB does)
    assert loaded.records == []
    train = load_dataset(tmp_path, "train", num_val_images=2, filter_non_overlap=True)
    assert train.records[0].relations.tolist() == [[0, 1, 0], [0, 2, 1], [0, 1, 2]]  # all intersect


def test_sgb_skips_the_four_known_corrupted_image_data_entries(tmp_path, layouts):
    truth = layouts.sgb_truth(tmp_path)
    extras = [{"image_id": i, "width": 10, "height": 10} for i in (1592, 1722, 4616, 4617)]
    layouts.write_sgb(tmp_path, truth, extra_image_data=extras)
    assert_same_records(load_dataset(tmp_path, "test", filter_empty_rels=False).records, truth["test"])
    image_data = json.loads((tmp_path / "image_data.json").read_text())
    (tmp_path / "image_data.json").write_text(json.dumps(image_data[1:]))  # one real entry missing
    with pytest.raises(DatasetError, match=r"image_data.json.*10 entries for 7 images"):
        load_dataset(tmp_path, "test")


def test_sgb_accepts_the_neural_motifs_file_names(tmp_path, layouts):
    truth = layouts.sgb_truth(tmp_path)
    layouts.write_sgb(tmp_path, truth, names=("VG-SGG.h5", "VG-SGG-dicts.json"))
    assert_same_records(load_dataset(tmp_path, "test", filter_empty_rels=False).records, truth["test"])


@pytest.mark.parametrize("split", ["train", "val", "test"])
def test_open_images_layout_reads_back_to_the_records(tmp_path, layouts, split):
    truth = layouts.open_images_truth(tmp_path)
    layouts.write_open_images(tmp_path, truth)
    loaded = load_dataset(tmp_path, split)
    assert loaded.layout == "open-images" and loaded.class_names == layouts.class_names
    assert_same_records(loaded.records, truth[split])


def test_open_images_options(tmp_path, layouts):
    truth = layouts.open_images_truth(tmp_path)
    layouts.write_open_images(tmp_path, truth)
    exact = load_dataset(tmp_path, "train", add_one_pixel=False).records[0]
    np.testing.assert_array_equal(exact.boxes, truth["train"][0].boxes - np.array([0, 0, 1, 1]))
    few = load_dataset(tmp_path, "train", max_objects=2)
    assert [r.image_id for r in few.records] == [r.image_id for r in truth["train"] if r.num_objects <= 2]


def test_open_images_duplicate_filter_is_on_for_train_only_by_default(tmp_path, layouts):
    truth = layouts.open_images_truth(tmp_path)
    layouts.write_open_images(tmp_path, truth)
    for split in ("train", "test"):
        path = tmp_path / "annotations" / f"vrd-{split}-anno.json"
        entries = json.loads(path.read_text())
        entries[0]["rel"] = [[0, 1, 2], [1, 0, 1], [0, 1, 2], [0, 1, 0]]
        path.write_text(json.dumps(entries))
    assert load_dataset(tmp_path, "train").records[0].relations.tolist() == [[0, 1, 2], [1, 0, 1], [0, 1, 0]]
    assert len(load_dataset(tmp_path, "test").records[0].relations) == 4
    assert len(load_dataset(tmp_path, "train", filter_duplicate_rels=False).records[0].relations) == 4


def test_layout_detection_and_clear_errors(tmp_path, layouts):
    with pytest.raises(NotADatasetError, match="rel.json.*VG-SGG-with-attri.h5.*categories_dict.json"):
        load_dataset(tmp_path)
    with pytest.raises(NotADatasetError, match="not a directory"):
        detect_layout(tmp_path / "missing")
    layouts.write_coco(tmp_path, {"train": layouts.coco_truth(tmp_path)["train"]})
    assert detect_layout(tmp_path).name == "coco"
    with pytest.raises(NotADatasetError, match="no val split"):
        load_dataset(tmp_path, "val")
    with pytest.raises(ValueError, match="split must be one of"):
        load_dataset(tmp_path, "training")
    with pytest.raises(ValueError, match="num_val_images unknown for the coco layout"):
        load_dataset(tmp_path, "train", num_val_images=3)


def test_strict_loading_names_file_image_and_field(tmp_path, layouts):
    truth = layouts.coco_truth(tmp_path)
    layouts.write_coco(tmp_path, truth)
    relations = json.loads((tmp_path / "rel.json").read_text())
    relations["train"]["13"] = [[0, 7, 1]]
    (tmp_path / "rel.json").write_text(json.dumps(relations))
    with pytest.raises(DatasetError) as caught:
        load_dataset(tmp_path, "train")
    problem = caught.value.problem
    assert (problem.kind, problem.image_id, problem.field) == (
        "relation_index_out_of_range",
        "13",
        "relations[0]",
    )
    assert problem.file.endswith("rel.json") and "(0, 7)" in problem.message

    coco = json.loads((tmp_path / "val.json").read_text())
    coco["annotations"][1]["bbox"] = [1, 2, 3]
    (tmp_path / "val.json").write_text(json.dumps(coco))
    with pytest.raises(DatasetError, match=r"val.json: image 19, annotations\[1\].bbox"):
        load_dataset(tmp_path, "val")


def test_broken_files_raise_dataset_errors(tmp_path, layouts):
    layouts.write_coco(tmp_path, layouts.coco_truth(tmp_path))
    (tmp_path / "test.json").write_text("{not json")
    with pytest.raises(DatasetError, match="test.json.*not valid JSON"):
        load_dataset(tmp_path, "test")
    coco = json.loads((tmp_path / "val.json").read_text())
    coco["categories"][0]["id"] = 7
    (tmp_path / "val.json").write_text(json.dumps(coco))
    with pytest.raises(DatasetError, match="categories.*without gaps"):
        load_dataset(tmp_path, "val")


def test_empty_split_and_image_without_boxes(tmp_path, layouts):
    truth = layouts.coco_truth(tmp_path)
    empty_image = truth["train"][0]
    empty_image.boxes, empty_image.labels = np.zeros((0, 4), np.float32), np.zeros(0, np.int64)
    empty_image.relations = np.zeros((0, 3), np.int64)
    layouts.write_coco(tmp_path, {"train": [empty_image], "val": []})
    assert_same_records(load_dataset(tmp_path, "train").records, [empty_image])
    assert load_dataset(tmp_path, "val").records == []
