"""`egtr evaluate --predictions FILE --data DIR` on a small synthetic dataset."""

import json

import numpy as np
import pytest

from egtr.cli import main
from egtr.data import load_dataset
from egtr.data.synthetic import write_synthetic_dataset
from egtr.evaluation import write_predictions


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthetic")
    write_synthetic_dataset(root, 16, seed=3, image_size=(64, 64), val_fraction=0.0, test_fraction=0.5)
    return root


def oracle_prediction(record, num_predicates):
    """Ground-truth boxes and labels; every ground-truth pair with score 1 on each of its predicates."""
    pairs = np.unique(record.relations[:, :2], axis=0).reshape(-1, 2)
    rel_scores = np.zeros((len(pairs), num_predicates), np.float32)
    for subject, obj, predicate in record.relations:
        rel_scores[np.flatnonzero((pairs == (subject, obj)).all(1)), predicate] = 1.0
    scores = np.ones(len(record.labels), np.float32)
    detections = {"boxes": record.boxes, "labels": record.labels, "scores": scores}
    return {
        "boxes": record.boxes,
        "labels": record.labels,
        "scores": scores,
        "rel_pairs": pairs,
        "rel_scores": rel_scores,
        "detections": detections,
    }


def write_oracle(dataset, path, skip=0):
    split = load_dataset(dataset, "test")
    items = [(r.image_id, oracle_prediction(r, split.num_predicates)) for r in split.records[skip:]]
    return write_predictions(path, items), split


def test_report_of_oracle_predictions(dataset, tmp_path, capsys):
    predictions, split = write_oracle(dataset, tmp_path / "predictions.npz")
    out = tmp_path / "report"
    code = main(
        ["evaluate", "--predictions", str(predictions), "--data", str(dataset), "--out", str(out), "--json"]
    )
    assert code == 0
    printed = json.loads(capsys.readouterr().out)
    report = json.loads((out / "metrics.json").read_text())
    assert printed == report
    assert report["ngR@50"] == 1.0 and 0 < report["R@50"] <= 1.0 and report["AP50"] == pytest.approx(1.0)
    assert report["settings"]["protocol"] == "vg" and report["settings"]["zero_shot_split"] == "train"
    assert "zR@50" in report
    assert report["counts"]["split_images"] == len(split.records)
    assert [row["name"] for row in report["per_predicate"]] == split.predicate_names
    assert "## Per predicate" in (out / "metrics.md").read_text()


def test_missing_predictions_exit_one_with_a_warning(dataset, tmp_path, capsys):
    predictions, _ = write_oracle(dataset, tmp_path / "predictions.npz", skip=1)
    code = main(
        ["evaluate", "--predictions", str(predictions), "--data", str(dataset), "--out", str(tmp_path)]
    )
    captured = capsys.readouterr()
    assert code == 1
    assert "1 test images had no prediction" in captured.err
    assert "@50" in captured.out and "ngmR" in captured.out and "report:" in captured.out


def test_unknown_image_is_a_one_line_error(dataset, tmp_path, capsys):
    split = load_dataset(dataset, "test")
    item = ("no-such-image", oracle_prediction(split.records[0], split.num_predicates))
    predictions = write_predictions(tmp_path / "p.npz", [item])
    code = main(
        ["evaluate", "--predictions", str(predictions), "--data", str(dataset), "--out", str(tmp_path)]
    )
    assert code == 2
    assert "prediction for image no-such-image, which is not in the split" in capsys.readouterr().err
