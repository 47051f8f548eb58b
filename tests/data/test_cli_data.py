"""`egtr data check|stats|synth` through the command-line entry point."""

from __future__ import annotations

import json

import numpy as np

from egtr.cli import main


def test_synth_then_check_then_stats(tmp_path, capsys):
    out = tmp_path / "world"
    assert (
        main(["data", "synth", "--out", str(out), "--images", "10", "--seed", "3", "--size", "48", "64"]) == 0
    )
    assert "wrote 10 synthetic images (train 8, val 1, test 1)" in capsys.readouterr().out
    assert main(["data", "check", str(out)]) == 0
    text = capsys.readouterr().out
    assert "layout coco" in text and "problems: 0" in text and "red square" in text and "left of" in text
    assert main(["data", "stats", str(out), "--top", "3", "--out", str(tmp_path / "stats")]) == 0
    assert "predicates (count, share)" in capsys.readouterr().out
    saved = json.loads((tmp_path / "stats" / "statistics.json").read_text())
    matrix = np.load(tmp_path / "stats" / "fg_matrix.npy")
    assert (
        matrix.shape == (13, 13, 6) and matrix.sum() == saved["relations"] and len(saved["top_triplets"]) <= 3
    )
    assert main(["data", "synth", "--out", str(out), "--images", "3", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["splits"] == {"train": 1, "val": 1, "test": 1}


def test_check_exit_codes_and_json(tmp_path, layouts, capsys):
    layouts.write_coco(tmp_path, layouts.coco_truth(tmp_path))
    (tmp_path / "images" / "13.png").unlink()
    assert main(["data", "check", str(tmp_path), "--split", "train", "--split", "val"]) == 1
    text = capsys.readouterr().out
    assert "problems: 1, missing_image 1" in text and "13.png: image 13, image file: file not found" in text
    assert main(["data", "check", str(tmp_path), "--json", "--no-images"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["problems"] == [] and [s["split"] for s in report["splits"]] == ["train", "val", "test"]
    assert main(["data", "check", str(tmp_path / "images")]) == 2
    assert "holds no supported dataset layout" in capsys.readouterr().err


def test_check_limits_the_listing_per_kind(tmp_path, layouts, capsys):
    layouts.write_coco(tmp_path, layouts.coco_truth(tmp_path))
    for path in (tmp_path / "images").iterdir():
        path.unlink()
    assert main(["data", "check", str(tmp_path), "--max-listed", "2"]) == 1
    text = capsys.readouterr().out
    assert text.count("file not found") == 2 and "... and 5 more missing_image (use --json for all)" in text


def test_stats_on_a_broken_dataset_is_a_one_line_error(tmp_path, layouts, capsys):
    layouts.write_coco(tmp_path, layouts.coco_truth(tmp_path))
    (tmp_path / "rel.json").write_text("{")
    assert main(["data", "stats", str(tmp_path)]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("egtr data: error:") and "rel.json" in error and len(error.splitlines()) == 1
