"""The COCO/RelTR writer: reader -> writer -> reader round trips from every layout."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from egtr.data import SceneGraphRecord, load_dataset, write_coco_dataset


def same_annotations(actual: SceneGraphRecord, expected: SceneGraphRecord) -> bool:
    """Equal except for the image path and id (which a conversion may change)."""
    return (
        (actual.width, actual.height) == (expected.width, expected.height)
        and np.array_equal(actual.boxes, expected.boxes)
        and np.array_equal(actual.labels, expected.labels)
        and np.array_equal(actual.relations, expected.relations)
    )


def read_all(root, splits=("train", "val", "test"), **options):
    return {split: load_dataset(root, split, **options) for split in splits}


def test_coco_round_trip_is_identical(tmp_path, layouts):
    source = tmp_path / "source"
    layouts.write_coco(source, layouts.coco_truth(source))
    first = read_all(source)
    out = write_coco_dataset(tmp_path / "out", first, layouts.class_names, layouts.predicate_names)
    second = read_all(out)
    for split in first:
        assert second[split].class_names == first[split].class_names
        assert second[split].predicate_names == first[split].predicate_names
        for before, after in zip(first[split].records, second[split].records, strict=True):
            assert after.image_id == before.image_id
            assert after.image_path == out / "images" / before.image_path.name
            assert after.image_path.read_bytes() == before.image_path.read_bytes()
            assert same_annotations(after, before)
    # and once more: the writer's own output is a fixed point
    again = write_coco_dataset(tmp_path / "again", second, layouts.class_names, layouts.predicate_names)
    for name in ("train.json", "val.json", "test.json", "rel.json"):
        assert json.loads((again / name).read_text()) == json.loads((out / name).read_text())


def test_sgb_to_custom_keeps_annotations_and_numeric_ids(tmp_path, layouts):
    source = tmp_path / "vg"
    layouts.write_sgb(source, layouts.sgb_truth(source))
    first = read_all(source, num_val_images=2, filter_empty_rels=False)
    out = write_coco_dataset(tmp_path / "out", first, layouts.class_names, layouts.predicate_names)
    second = read_all(out)
    for split in first:
        for before, after in zip(first[split].records, second[split].records, strict=True):
            assert after.image_id == before.image_id and same_annotations(after, before)


def test_open_images_to_custom_renumbers_ids_and_keeps_file_names(tmp_path, layouts):
    source = tmp_path / "oi"
    layouts.write_open_images(source, layouts.open_images_truth(source))
    first = read_all(source)
    out = write_coco_dataset(tmp_path / "out", first, layouts.class_names, layouts.predicate_names)
    second = read_all(out)
    for split in first:
        records = second[split].records
        assert [r.image_id for r in records] == [str(i) for i in range(1, len(records) + 1)]
        for before, after in zip(first[split].records, records, strict=True):
            assert after.image_path.name == before.image_path.name and same_annotations(after, before)


def test_writer_without_copying_needs_images_under_the_output(tmp_path, layouts):
    source = tmp_path / "source"
    layouts.write_coco(source, layouts.coco_truth(source))
    train = load_dataset(source, "train")
    with pytest.raises(ValueError, match="is not under.*copy_images=True"):
        write_coco_dataset(
            tmp_path / "out", {"train": train}, layouts.class_names, layouts.predicate_names, False
        )
    # in place: the images already lie under OUT/images
    write_coco_dataset(
        source, {"train": train}, layouts.class_names, layouts.predicate_names, copy_images=False
    )
    assert load_dataset(source, "train").records == train.records


def test_writer_rejects_clashing_file_names_and_unknown_splits(tmp_path, layouts):
    one = layouts.write_image(tmp_path / "a" / "x.png", 8, 8)
    two = layouts.write_image(tmp_path / "b" / "x.png", 8, 8)
    records = [SceneGraphRecord(str(i), path, 8, 8, [], [], []) for i, path in enumerate((one, two))]
    with pytest.raises(ValueError, match="file name x.png is used by both"):
        write_coco_dataset(tmp_path / "out", {"train": records}, ["c"], ["p"])
    with pytest.raises(ValueError, match="split names must be among"):
        write_coco_dataset(tmp_path / "out", {"training": records[:1]}, ["c"], ["p"])


coordinates = st.floats(0, 4000, allow_nan=False, width=32)


@settings(max_examples=30, deadline=None)
@given(
    corners=st.lists(st.tuples(coordinates, coordinates, coordinates, coordinates), min_size=1, max_size=6)
)
def test_float32_boxes_survive_the_round_trip_exactly(tmp_path_factory, corners):
    out = tmp_path_factory.mktemp("floats")
    image = out / "images" / "1.png"
    image.parent.mkdir()
    image.touch()
    boxes = [(min(a, c), min(b, d), max(a, c), max(b, d)) for a, b, c, d in corners]
    record = SceneGraphRecord("1", image, 4000, 4000, boxes, [0] * len(boxes), [])
    write_coco_dataset(out, {"train": [record]}, ["c"], ["p"], copy_images=False)
    np.testing.assert_array_equal(load_dataset(out, "train").records[0].boxes, record.boxes)
