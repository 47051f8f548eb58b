"""Study results: mean ± std over seeds, best cell per column, paper column, results files and plots."""

import json
import math

import pytest
from PIL import Image

from egtr.studies.results import mean_std, summarize, write_results
from egtr.studies.study import parse_study

STUDY = parse_study(
    json.dumps(
        {
            "name": "alpha",
            "title": "Alpha",
            "metrics": ["R@50", "mR@50"],
            "paper": {"status": "unconfirmed", "source": "a summary"},
            "plot": {"x": "smoothing", "log": True},
            "variants": [
                {"name": "small", "model": {"smoothing": 1e-12}, "paper": {"R@50": 30.2, "mR@50": 7.9}},
                {"name": "large", "model": {"smoothing": 1e-6}},
                {"name": "off", "model": {"smoothing": 0.0}, "note": "not in the paper"},
            ],
        }
    ),
    "alpha.json",
)


def record(seed, r50, mr50):
    return {
        "seed": seed,
        "minutes": 1.0,
        "metrics": {"R@50": r50, "mR@50": mr50, "zR@50": None, "per_predicate": []},
    }


RECORDS = {
    "small": [record(0, 0.50, 0.20), record(1, 0.54, 0.30)],
    "large": [record(1, 0.60, 0.10), record(0, 0.40, 0.10)],
    "off": [record(0, 0.52, 0.25)],
}


def test_mean_and_sample_std():
    assert mean_std([1.0, 2.0, 3.0]) == (2.0, 1.0, 3)
    assert mean_std([0.5]) == (0.5, None, 1)
    assert mean_std([None, float("nan")]) == (None, None, 0)


def test_summary_per_variant():
    rows = summarize(STUDY, RECORDS)
    small = rows[0]["summary"]
    assert small["R@50"]["mean"] == pytest.approx(0.52) and small["R@50"]["std"] == pytest.approx(
        math.sqrt(0.0008)
    )
    assert rows[1]["summary"]["R@50"] == {
        "mean": pytest.approx(0.5),
        "std": pytest.approx(math.sqrt(0.02)),
        "n": 2,
    }
    assert [run["seed"] for run in rows[1]["runs"]] == [0, 1]
    assert rows[0]["summary"]["zR@50"] == {"mean": None, "std": None, "n": 0}


def test_results_files(tmp_path):
    json_path, markdown_path, figure_path = write_results(tmp_path, STUDY, RECORDS, {"machine": "test"})
    lines = markdown_path.read_text().splitlines()
    # the best mean of each column is bold, ties included (small and off both have R@50 52.0)
    assert "| small | **52.0 ± 2.8** | **25.0 ± 7.1** | R@50 30.2, mR@50 7.9 (unconfirmed) |" in lines
    assert "| large | 50.0 ± 14.1 | 10.0 ± 0.0 | – |" in lines
    assert "| off (1 run) | **52.0** | **25.0** | not in the paper |" in lines
    document = json.loads(json_path.read_text())
    assert [variant["name"] for variant in document["variants"]] == ["small", "large", "off"]
    assert document["variants"][0]["runs"][1]["metrics"]["R@50"] == 0.54
    assert Image.open(figure_path).size[0] > 100


def test_bar_plot_and_not_reported(tmp_path):
    study = parse_study(json.dumps({"name": "b", "variants": [{"name": "a"}, {"name": "b"}]}), "b.json")
    records = {"a": [record(0, 0.1, 0.2)], "b": []}
    _, markdown_path, figure_path = write_results(tmp_path, study, records, {})
    text = markdown_path.read_text()
    assert "| a | 10.0 |" not in text  # default metrics: R@20 first, missing here
    assert "| b (0 runs) | – |" in text and "not reported" in text
    assert figure_path.name == "b.png" and figure_path.stat().st_size > 0
