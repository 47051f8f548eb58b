"""Torch datasets and batching: item format, unreadable images skipped and counted, padding and masks."""

from __future__ import annotations

import logging
import random

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from egtr.data import SceneGraphRecord, load_dataset
from egtr.data.collate import collate, dense_relation_target
from egtr.data.dataset import SceneGraphDataset, SyntheticDataset
from egtr.data.synthetic import SyntheticWorld
from egtr.data.transforms import eval_transform, normalize_image, train_transform


def test_item_format(tmp_path, layouts):
    layouts.write_coco(tmp_path, layouts.coco_truth(tmp_path))
    split = load_dataset(tmp_path, "train")
    item = SceneGraphDataset(split, eval_transform(32, 64))[0]
    record = split.records[0]
    target = item["target"]
    assert item["pixel_values"].shape == (3, 32, 42) and item["pixel_values"].dtype == torch.float32
    assert set(target) == {"labels", "boxes", "relations", "image_id", "orig_size", "size"}
    assert target["labels"].dtype == torch.long and target["relations"].dtype == torch.long
    assert target["image_id"] == record.image_id
    assert target["orig_size"].tolist() == [48, 64] and target["size"].tolist() == [32, 42]
    x0, y0, x1, y1 = record.boxes[0]
    expected = [(x0 + x1) / 2 / 64, (y0 + y1) / 2 / 48, (x1 - x0) / 64, (y1 - y0) / 48]
    torch.testing.assert_close(target["boxes"][0], torch.tensor(expected), rtol=1e-5, atol=1e-6)
    assert torch.equal(target["relations"], torch.from_numpy(record.relations))


def test_default_transform_only_normalizes(tmp_path, layouts):
    path = layouts.write_image(tmp_path / "a.png", 20, 10)
    record = SceneGraphRecord("a", path, 20, 10, [[-3, 2, 25, 8]], [1], [])
    item = SceneGraphDataset([record])[0]
    assert torch.equal(item["pixel_values"], normalize_image(Image.open(path)))
    # boxes are clipped to the image, as the official (Hugging Face DetrFeatureExtractor) preparation does
    torch.testing.assert_close(item["target"]["boxes"], torch.tensor([[0.5, 0.5, 1.0, 0.6]]))


def test_unreadable_image_is_skipped_with_a_warning_and_counted(tmp_path, layouts, caplog):
    layouts.write_coco(tmp_path, layouts.coco_truth(tmp_path))
    (tmp_path / "images" / "13.png").write_bytes(b"broken")
    (tmp_path / "images" / "16.png").unlink()
    dataset = SceneGraphDataset(load_dataset(tmp_path, "train"), train_transform(scales=(24,), max_size=40))
    with caplog.at_level(logging.WARNING, logger="egtr.data.dataset"):
        batches = list(DataLoader(dataset, batch_size=2, collate_fn=collate))
    assert [b["skipped"] for b in batches] == [1, 1]
    assert [len(b["targets"]) for b in batches] == [1, 0]
    assert batches[1]["pixel_values"].shape == (0, 3, 0, 0) and batches[1]["pixel_mask"].shape == (0, 0, 0)
    warnings = [r.getMessage() for r in caplog.records]
    assert any("13.png" in w and "image id 13" in w for w in warnings)
    assert any("16.png" in w and "image id 16" in w for w in warnings)


def test_single_predicate_per_pair_draws_one_of_the_pair_predicates(tmp_path, layouts):
    path = layouts.write_image(tmp_path / "a.png", 16, 16)
    relations = [[0, 1, 0], [0, 1, 2], [1, 0, 1], [0, 1, 1]]
    record = SceneGraphRecord("a", path, 16, 16, [[0, 0, 8, 8], [4, 4, 16, 16]], [0, 1], relations)
    dataset = SceneGraphDataset([record], single_predicate_per_pair=True, rng=random.Random(5))
    drawn = [dataset[0]["target"]["relations"].tolist() for _ in range(40)]
    assert all(len(r) == 2 and r[1] == [1, 0, 1] and r[0][:2] == [0, 1] for r in drawn)
    assert {r[0][2] for r in drawn} == {0, 1, 2}
    again = SceneGraphDataset([record], single_predicate_per_pair=True, rng=random.Random(5))
    assert [again[0]["target"]["relations"].tolist() for _ in range(40)] == drawn
    assert SceneGraphDataset([record])[0]["target"]["relations"].tolist() == relations


def sample(height, width, fill):
    return {"pixel_values": torch.full((3, height, width), fill), "target": {"image_id": str(fill)}}


def test_collate_pads_bottom_right_with_zeros_and_masks_real_pixels():
    batch = collate([sample(2, 3, 1.0), None, sample(4, 2, 2.0)])
    assert batch["pixel_values"].shape == (2, 3, 4, 3) and batch["skipped"] == 1
    assert [t["image_id"] for t in batch["targets"]] == ["1.0", "2.0"]
    reference = torch.zeros(2, 3, 4, 3)
    reference[0, :, :2, :3] = 1.0
    reference[1, :, :4, :2] = 2.0
    assert torch.equal(batch["pixel_values"], reference)
    assert torch.equal(batch["pixel_mask"], reference[:, 0] > 0)
    assert batch["pixel_mask"].dtype == torch.bool
    single = collate([sample(5, 5, 3.0)])
    assert single["pixel_mask"].all() and single["skipped"] == 0
    empty = collate([None, None])
    assert empty["targets"] == [] and empty["skipped"] == 2 and empty["pixel_values"].shape == (0, 3, 0, 0)


@pytest.mark.parametrize(
    "samples", [[sample(5, 7, 3.0)], [None, sample(4, 6, 2.0)], [sample(2, 3, 1.0), sample(4, 2, 2.0)]]
)
def test_a_shared_lone_image_batches_like_the_copy(samples):
    copied, shared = collate(samples), collate(samples, share_lone_image=True)
    assert shared.keys() == copied.keys() and shared["skipped"] == copied["skipped"]
    assert shared["targets"] == copied["targets"]
    for key in ("pixel_values", "pixel_mask"):
        assert shared[key].dtype == copied[key].dtype and torch.equal(shared[key], copied[key])
    lone = [s for s in samples if s is not None]
    if len(lone) == 1:  # a view of the sample, not a copy
        assert shared["pixel_values"].data_ptr() == lone[0]["pixel_values"].data_ptr()


def test_dense_relation_target():
    relations = torch.tensor([[0, 1, 2], [1, 0, 0], [0, 1, 1]])
    dense = dense_relation_target(relations, num_objects=3, num_predicates=4)
    reference = torch.zeros(3, 3, 4)
    for s, o, p in relations.tolist():
        reference[s, o, p] = 1
    assert torch.equal(dense, reference)
    assert dense_relation_target(torch.zeros(0, 3, dtype=torch.long), 2, 3).sum() == 0


def test_synthetic_dataset_items_match_the_world():
    world = SyntheticWorld(seed=3, image_size=(48, 64))
    dataset = SyntheticDataset(world, num_images=4, start=10)
    assert len(dataset) == 4
    item = dataset[1]
    image, record = world.sample(11)
    assert torch.equal(item["pixel_values"], normalize_image(image))
    assert item["target"]["image_id"] == "11"
    assert torch.equal(item["target"]["relations"], torch.from_numpy(record.relations))
    np.testing.assert_allclose(
        item["target"]["boxes"][:, 2].numpy(), (record.boxes[:, 2] - record.boxes[:, 0]) / 64
    )
    with pytest.raises(IndexError):
        dataset[4]
    batch = collate([dataset[i] for i in range(4)])
    assert batch["pixel_values"].shape == (4, 3, 48, 64) and batch["pixel_mask"].all()


def test_size_mismatch_warns_once_and_uses_the_real_size(tmp_path, layouts, caplog):
    path = layouts.write_image(tmp_path / "a.png", 30, 20)
    dataset = SceneGraphDataset([SceneGraphRecord("a", path, 60, 40, [[0, 0, 30, 20]], [0], [])])
    with caplog.at_level(logging.WARNING, logger="egtr.data.dataset"):
        items = [dataset[0], dataset[0]]
    assert [r.getMessage() for r in caplog.records] == [
        f"image {path} (image id a) is 30x20 but annotated as 60x40; using the image's size"
    ]
    assert items[0]["target"]["orig_size"].tolist() == [20, 30]
    torch.testing.assert_close(items[0]["target"]["boxes"], torch.tensor([[0.5, 0.5, 1.0, 1.0]]))
