"""`egtr demo` end to end on a tiny budget: report, learning curve, checked drawings, resumption; its
settings; the review drawing's hit marks."""

import json

import numpy as np
import pytest

from egtr.cli import main
from egtr.data.record import SceneGraphRecord
from egtr.engine.demo import DEMO_STEPS, DEMO_TRAINING, DRAWN_DEDUP_IOU, VALIDATIONS, demo_settings
from egtr.engine.settings import preset
from egtr.inference.predictor import SceneGraphPredictor
from egtr.inference.review import triplet_hits
from egtr.inference.scene_graph import SceneGraph, Triplet

from ..torch_threads import one_torch_thread  # noqa: F401

pytestmark = pytest.mark.usefixtures("one_torch_thread")
TINY = ["--images", "30", "--steps", "3", "--size", "64", "--batch-size", "2", "--json"]


def test_demo_end_to_end_then_resumed(tmp_path, capsys, monkeypatch):
    drawn_with = []  # the options of the predictor that draws the report's scene graphs
    build = SceneGraphPredictor.from_checkpoint.__func__
    monkeypatch.setattr(
        SceneGraphPredictor,
        "from_checkpoint",
        classmethod(lambda cls, *args, **options: drawn_with.append(options) or build(cls, *args, **options)),
    )
    out = tmp_path / "demo"
    assert main(["demo", *TINY, "--out", str(out)]) == 0
    assert [options["dedup_iou"] for options in drawn_with] == [DRAWN_DEDUP_IOU]  # metrics: no merging
    printed = capsys.readouterr().out
    printed = json.loads(printed[printed.index("{\n") :])  # after the world's "generating ..." line
    report = out / "report"
    metrics = json.loads((report / "metrics.json").read_text())
    assert {"AP50", "R@50", "mR@50", "settings"} <= set(metrics)
    assert printed["R@50"] == metrics["R@50"]
    curve = json.loads((report / "learning_curve.json").read_text())
    assert [point["steps"] for point in curve] == [1, 2, 3]  # every step of 3 (3 // VALIDATIONS -> 1)
    assert all(point["minutes"] > 0 and 0 <= point["AP50"] <= 1 for point in curve)
    assert (report / "learning_curve.png").read_bytes()[:4] == b"\x89PNG"
    drawings = sorted((report / "predictions").glob("*.png"))
    assert len(drawings) == 3 and all(path.with_suffix(".json").is_file() for path in drawings)
    assert (out / "model.safetensors").is_file()

    # the same command again: the finished run is resumed at its end, nothing trains, the same numbers
    assert main(["demo", *TINY, "--out", str(out)]) == 0
    capsys.readouterr()
    assert json.loads((report / "metrics.json").read_text())["R@50"] == metrics["R@50"]


def test_demo_settings(tmp_path):
    settings = demo_settings(
        tmp_path / "data",
        tmp_path / "train",
        image_size=128,
        seed=1,
        steps=DEMO_STEPS,
        minutes=None,
        batch_size=4,
        accelerator="cpu",
        workers=0,
    )
    assert (settings.phase, settings.init_from, settings.seed) == ("egtr", None, 1)
    assert settings.max_steps == DEMO_STEPS and settings.val_check_interval == DEMO_STEPS // VALIDATIONS
    assert (settings.eval_size, settings.train_scales) == (128, [115, 128, 141])
    synthetic = preset("synthetic", "egtr")
    assert settings.model == {**synthetic.model, **DEMO_TRAINING["model"]}
    assert (settings.lr, settings.lr_initialized) == (DEMO_TRAINING["lr"], DEMO_TRAINING["lr_initialized"])
    assert (settings.lr_schedule, synthetic.lr_schedule) == ("step", "constant")  # the presets keep theirs
    timed = demo_settings(
        tmp_path / "data",
        tmp_path / "train",
        image_size=128,
        seed=0,
        steps=DEMO_STEPS,
        minutes=20,
        batch_size=4,
        accelerator="cpu",
        workers=0,
    )
    assert (timed.max_steps, timed.max_minutes) == (-1, 20)


def graph_and_record():
    record = SceneGraphRecord(
        image_id="1",
        image_path="1.png",
        width=100,
        height=100,
        boxes=[[10, 10, 40, 40], [50, 50, 90, 90], [10, 60, 30, 90]],
        labels=[0, 1, 2],
        relations=[[0, 1, 3], [2, 1, 4]],
    )
    graph = SceneGraph(
        source="1.png",
        width=100,
        height=100,
        boxes=np.array([[11, 10, 41, 40], [50, 52, 90, 90], [60, 0, 99, 20]], dtype=np.float32),
        labels=np.array([0, 1, 2]),
        label_names=["a", "b", "c"],
        scores=np.ones(3, dtype=np.float32),
        queries=np.arange(3),
        triplets=[Triplet(0, 3, 1, 0.9), Triplet(0, 2, 1, 0.8), Triplet(2, 4, 1, 0.7)],
        predicate_names=["p3", "p2", "p4"],
    )
    return graph, record


def test_review_marks_hits_as_the_evaluator_counts_them():
    graph, record = graph_and_record()
    predicted, found = triplet_hits(graph, record, shown=3)
    # the first matches relation 0; the second has another predicate; the third's subject box is elsewhere
    assert predicted == [True, False, False] and found == [True, False]
    assert triplet_hits(graph, record, shown=1) == ([True], [True, False])
