"""metrics.json / metrics.md from an evaluator result."""

import json
import math

import numpy as np

from egtr.evaluation import SceneGraphEvaluator, write_report


def small_result():
    evaluator = SceneGraphEvaluator(3, (20, 50))
    truth = {
        "boxes": np.array([[0, 0, 9, 9], [20, 20, 29, 29]]),
        "labels": np.array([0, 1]),
        "relations": np.array([[0, 1, 0]]),
    }
    prediction = {
        "boxes": truth["boxes"].astype(np.float32),
        "labels": truth["labels"],
        "scores": np.ones(2, np.float32),
        "rel_pairs": np.array([[0, 1]]),
        "rel_scores": np.array([[0.9, 0.1, 0.0]], np.float32),
    }
    evaluator.update(truth, prediction)
    return evaluator.compute()


def test_report_files(tmp_path):
    metrics = small_result()
    metrics["AP50"] = np.float64(0.25)
    metrics["odd"] = math.nan
    json_path, markdown_path = write_report(
        tmp_path / "out", metrics, {"protocol": "vg", "ks": (20, 50)}, ["on", "has", "near | by"]
    )
    report = json.loads(json_path.read_text())
    assert report["R@20"] == 1.0 and report["AP50"] == 0.25 and report["odd"] is None
    assert report["mR@20"] == 1 / 3
    assert report["settings"] == {"protocol": "vg", "ks": [20, 50]}
    assert report["counts"]["images"] == 1
    assert [row["name"] for row in report["per_predicate"]] == ["on", "has", "near | by"]
    assert report["per_predicate"][1]["R@20"] is None
    markdown = markdown_path.read_text()
    assert "| metric | @20 | @50 |" in markdown
    assert "| R | 100.00 | 100.00 |" in markdown
    assert "| mR | 33.33 | 33.33 |" in markdown
    assert "| AP50 | 25.00 |" in markdown and "| odd | – |" in markdown
    assert "| 0 | on | 1 | 1 | 100.00 | 100.00 | 100.00 | 100.00 |" in markdown
    assert "| 2 | near \\| by | 0 | 0 | – | – | – | – |" in markdown
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["metrics.json", "metrics.md"]
