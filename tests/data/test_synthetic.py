"""The synthetic world: deterministic by seed, predicates consistent with the geometry, sparse, learnable."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from egtr.data import load_dataset
from egtr.data.check import check_dataset
from egtr.data.synthetic import PALETTE, SyntheticWorld, split_sizes, write_synthetic_dataset
from egtr.data.synthetic.world import Scene


def box_gaps(a, b):
    """(gx, gy): pixels between two xyxy boxes along x and y (negative when the projections overlap)."""
    return max(b[0] - a[2], a[0] - b[2]), max(b[1] - a[3], a[1] - b[3])


def colour_pixels(image, box, colour):
    x0, y0, x1, y1 = (int(v) for v in box)
    region = np.asarray(image)[y0:y1, x0:x1]
    return int((region == np.array(colour)).all(axis=-1).sum())


def assert_consistent_with_geometry(world: SyntheticWorld, image, record):
    """Check every annotated relation, and every pair without one, from the boxes and the pixels alone."""
    rules = world.rules
    boxes = record.boxes.astype(int).tolist()
    colours = [PALETTE[world.class_names[label].split()[0]] for label in record.labels]
    related = set()
    for subject, object_, predicate in record.relations.tolist():
        pair = frozenset((subject, object_))
        assert pair not in related, "a pair has at most one predicate"
        related.add(pair)
        s, o = boxes[subject], boxes[object_]
        gx, gy = box_gaps(s, o)
        name = world.predicate_names[predicate]
        if name == "inside":
            assert subject > object_ and o[0] <= s[0] and o[1] <= s[1] and s[2] <= o[2] and s[3] <= o[3]
            assert colours[subject] != colours[object_]
        elif name == "on":
            assert s[3] == o[1] and gx <= -rules.projection_margin
        elif name == "in front of":
            assert subject > object_ and gx < 0 and gy < 0 and colours[subject] != colours[object_]
            overlap = [max(s[0], o[0]), max(s[1], o[1]), min(s[2], o[2]), min(s[3], o[3])]
            assert colour_pixels(image, overlap, colours[subject]) > 0
        elif name == "above":
            assert (
                s[3] + rules.min_gap <= o[1] <= s[3] + rules.near_distance and gx <= -rules.projection_margin
            )
        elif name == "left of":
            assert (
                s[2] + rules.min_gap <= o[0] <= s[2] + rules.near_distance and gy <= -rules.projection_margin
            )
        else:
            assert name == "near" and s[2] + rules.projection_margin <= o[0] and gy >= rules.projection_margin
            assert max(gx, gy) <= rules.near_distance
    for a in range(len(boxes)):
        for b in range(a):
            if frozenset((a, b)) not in related:
                assert max(box_gaps(boxes[a], boxes[b])) >= rules.far_distance, (
                    "unrelated pairs are far apart"
                )
    for index, box in enumerate(boxes):
        assert colour_pixels(image, box, colours[index]) > 0, "every object shows its colour"


@pytest.mark.parametrize("size", [(192, 192), (64, 64), (40, 100), (100, 48)])
def test_predicates_are_consistent_with_the_geometry(size):
    world = SyntheticWorld(seed=1, image_size=size)
    for index in range(40):
        image, record = world.sample(index)
        assert image.size == (size[1], size[0]) and (record.width, record.height) == (size[1], size[0])
        assert world.min_objects <= record.num_objects <= world.max_objects
        assert (record.labels >= 0).all() and (record.labels < len(world.class_names)).all()
        sides = record.boxes[:, 2:] - record.boxes[:, :2]
        assert (sides >= min(size) / 8 - 0.5).all(), "objects are at least 1/8 of the shorter side"
        assert (record.boxes[:, :2] >= 0).all() and (record.boxes[:, 2] <= size[1]).all()
        assert (record.boxes[:, 3] <= size[0]).all()
        assert_consistent_with_geometry(world, image, record)


def test_boxes_are_the_full_extent_of_each_shape():
    world = SyntheticWorld(seed=2, image_size=(80, 80))
    for index in range(10):
        scene = world.scene(index)
        record = world.annotate(scene, index)
        for item, box in zip(scene.objects, record.boxes.tolist()):
            alone = np.asarray(world.render(Scene([item], background=0))).any(axis=-1)
            ys, xs = np.nonzero(alone)
            assert [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1] == box


def test_deterministic_by_seed_and_index():
    world = SyntheticWorld(seed=7, image_size=(64, 96))
    image, record = world.sample(5)
    for _ in range(2):
        fresh_image, fresh_record = SyntheticWorld(seed=7, image_size=(64, 96)).sample(5)
        assert fresh_record == record and fresh_image.tobytes() == image.tobytes()
    world.sample(4)
    assert world.sample(5)[1] == record, "a sample does not depend on what was sampled before"
    other_seed = SyntheticWorld(seed=8, image_size=(64, 96)).sample(5)
    other_index = world.sample(6)
    assert other_seed[0].tobytes() != image.tobytes() and other_index[0].tobytes() != image.tobytes()


def test_relations_are_sparse_and_predicates_all_occur():
    world = SyntheticWorld(seed=0, image_size=(96, 96))
    records = [world.sample(index)[1] for index in range(200)]
    per_image = np.array([r.num_relations for r in records])
    assert 1.5 <= per_image.mean() <= 5 and (per_image == 0).mean() < 0.1
    assert (per_image <= world.max_objects * world.max_relations_per_object).all()
    counts = np.bincount(np.concatenate([r.relations[:, 2] for r in records]), minlength=6)
    assert (counts >= 0.03 * counts.sum()).all(), f"every predicate is common enough: {counts}"
    pairs = np.array([r.num_objects * (r.num_objects - 1) / 2 for r in records])
    assert per_image.sum() < 0.75 * pairs.sum(), "most pairs have no relation"


def test_configurable_classes_and_predicates():
    world = SyntheticWorld(
        seed=0,
        image_size=(64, 64),
        shapes=("circle", "square"),
        colours=("red", "cyan"),
        predicates=("left of", "above"),
        min_objects=3,
        max_objects=3,
    )
    assert world.class_names == ["red circle", "cyan circle", "red square", "cyan square"]
    assert world.predicate_names == ["left of", "above"]
    for index in range(20):
        image, record = world.sample(index)
        assert record.num_objects <= 3 and set(record.relations[:, 2].tolist()) <= {0, 1}
        assert_consistent_with_geometry(world, image, record)
    with pytest.raises(ValueError, match="shapes must be"):
        SyntheticWorld(shapes=("hexagon",))
    with pytest.raises(ValueError, match="at least 32"):
        SyntheticWorld(image_size=(16, 64))
    with pytest.raises(ValueError, match="min_objects"):
        SyntheticWorld(min_objects=4, max_objects=3)


def test_split_sizes():
    assert split_sizes(100) == {"train": 80, "val": 10, "test": 10}
    assert split_sizes(3) == {"train": 1, "val": 1, "test": 1}
    assert split_sizes(2) == {"train": 2, "val": 0, "test": 0}
    assert split_sizes(0) == {"train": 0, "val": 0, "test": 0}
    with pytest.raises(ValueError, match="no room"):
        split_sizes(10, 0.6, 0.6)


def test_written_dataset_is_clean_and_matches_the_world(tmp_path):
    sizes = write_synthetic_dataset(tmp_path, 20, seed=4, image_size=(48, 64))
    assert sizes == {"train": 16, "val": 2, "test": 2}
    report = check_dataset(tmp_path, decode=True)
    assert report.problems == [] and [s.images for s in report.splits] == [16, 2, 2]
    world = SyntheticWorld(seed=4, image_size=(48, 64))
    start = {"train": 0, "val": 16, "test": 18}
    for split, first in start.items():
        loaded = load_dataset(tmp_path, split)
        assert loaded.class_names == world.class_names and loaded.predicate_names == world.predicate_names
        for offset, record in enumerate(loaded.records):
            image, expected = world.sample(first + offset)
            expected.image_path = tmp_path / "images" / expected.image_path
            assert record == expected
            assert np.array_equal(np.asarray(image), np.asarray(Image.open(record.image_path)))
