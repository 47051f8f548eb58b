"""The predictions file: round trip, atomic write, and clear errors on malformed files."""

import numpy as np
import pytest
import torch

from egtr.evaluation import PredictionsFile, PredictionsFileError, read_predictions, write_predictions


def prediction(num_objects, num_pairs, seed, detections=True):
    rng = np.random.default_rng(seed)
    entry = {
        "boxes": rng.random((num_objects, 4), dtype=np.float32) * 100,
        "labels": rng.integers(0, 5, num_objects),
        "scores": rng.random(num_objects, dtype=np.float32),
        "rel_pairs": rng.integers(0, max(num_objects, 1), (num_pairs, 2)),
        "rel_scores": rng.random((num_pairs, 3), dtype=np.float32),
    }
    if detections:
        entry["detections"] = {
            "boxes": entry["boxes"][:2],
            "labels": entry["labels"][:2],
            "scores": entry["scores"][:2],
        }
    return entry


def items(detections=True):
    return [
        ("img-a", prediction(4, 3, 0, detections)),
        ("7", prediction(0, 0, 1, detections)),
        ("c", prediction(2, 1, 2, detections)),
    ]


@pytest.mark.parametrize("detections", [True, False])
def test_round_trip(tmp_path, detections):
    path = write_predictions(tmp_path / "predictions.npz", items(detections))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["predictions.npz"]  # no temporary left behind
    loaded = list(read_predictions(path))
    assert [image_id for image_id, _ in loaded] == ["img-a", "7", "c"]
    for (_, expected), (_, actual) in zip(items(detections), loaded):
        for key in ("boxes", "labels", "scores", "rel_pairs", "rel_scores"):
            np.testing.assert_array_equal(actual[key], np.asarray(expected[key]).reshape(actual[key].shape))
        assert actual["rel_pairs"].dtype == np.int64
        assert ("detections" in actual) == detections
        if detections:
            np.testing.assert_array_equal(actual["detections"]["boxes"], expected["detections"]["boxes"])
    assert PredictionsFile(path).image_ids == ["img-a", "7", "c"]


def test_torch_predictions_are_written(tmp_path):
    entry = {key: torch.as_tensor(value) for key, value in prediction(3, 2, 0, detections=False).items()}
    path = write_predictions(tmp_path / "p.npz", [("x", entry)])
    ((_, loaded),) = read_predictions(path)
    np.testing.assert_array_equal(loaded["rel_scores"], entry["rel_scores"].numpy())


def test_write_rejects_bad_predictions(tmp_path):
    bad = prediction(2, 1, 0)
    bad["rel_pairs"] = np.array([[0, 5]])
    with pytest.raises(PredictionsFileError, match=r"image x.*'rel_pairs' has box indices"):
        write_predictions(tmp_path / "p.npz", [("x", bad)])
    with pytest.raises(PredictionsFileError, match="every prediction has 'detections' or none"):
        write_predictions(tmp_path / "p.npz", [("a", prediction(2, 1, 0)), ("b", prediction(2, 1, 0, False))])
    assert not (tmp_path / "p.npz").exists()


def rewrite(tmp_path, **changes):
    path = write_predictions(tmp_path / "p.npz", items())
    with np.load(path) as archive:
        arrays = {name: archive[name] for name in archive.files}
    arrays.update(changes)
    for name in [name for name, value in changes.items() if value is None]:
        del arrays[name]
    broken = tmp_path / "broken.npz"
    np.savez(broken, **arrays)
    return broken


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"rel_scores": None}, "missing field 'rel_scores'"),
        ({"pair_offsets": np.array([0, 3, 3])}, "field 'pair_offsets' must be 4 non-decreasing"),
        ({"object_offsets": np.array([0, 5, 4, 6])}, "field 'object_offsets'"),
        (
            {"rel_pairs": np.array([[0, 1], [0, 9], [0, 1], [1, 0]], np.int32)},
            "'rel_pairs' of image img-a refers to a missing box",
        ),
        ({"image_ids": np.array(["a", "a", "b"])}, "'image_ids' repeats image a"),
        ({"version": np.array(2)}, "expected egtr-predictions/1"),
        ({"boxes": np.full((6, 4), np.nan, np.float32)}, "field 'boxes' must hold finite numbers"),
        ({"image_ids": np.array([{"a": 1}, 2, 3], dtype=object)}, "not a readable .npz predictions file"),
    ],
)
def test_malformed_files_name_file_and_field(tmp_path, changes, message):
    broken = rewrite(tmp_path, **changes)
    with pytest.raises(PredictionsFileError, match=message) as error:
        PredictionsFile(broken)
    assert str(broken) in str(error.value)


def test_not_an_npz(tmp_path):
    path = tmp_path / "p.npz"
    path.write_text("hello")
    with pytest.raises(PredictionsFileError, match="not a readable .npz"):
        PredictionsFile(path)
