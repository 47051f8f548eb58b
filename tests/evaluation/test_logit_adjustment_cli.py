"""`--logit-adjustment` / `--logit-adj-tau` of `egtr evaluate` and `egtr predict` override the checkpoint's
config as the official evaluation's flags do; on a hand-built model the metrics move as derived on paper
(mR@K up, R@K down)."""

import json

import pytest

from egtr.checkpoints import save_model
from egtr.cli import main
from egtr.inference.predictor import SceneGraphPredictor

from ..constructed_models import WITH, WITHOUT, constructed_model, write_constructed_dataset
from ..official_checkpoints import write_official_artifact
from ..torch_threads import one_torch_thread  # noqa: F401

pytestmark = pytest.mark.usefixtures("one_torch_thread")

EVALUATE = ["--size", "64", "--max-size", "64", "--workers", "0", "--zero-shot-split", "none"]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return write_constructed_dataset(tmp_path_factory.mktemp("constructed"))


@pytest.fixture(scope="module")
def native(tmp_path_factory):
    return save_model(constructed_model(), tmp_path_factory.mktemp("native") / "model.safetensors")


def evaluate(capsys, checkpoint, dataset, out, *flags):
    arguments = ["--checkpoint", str(checkpoint), "--data", str(dataset), "--out", str(out), *EVALUATE]
    code = main(["evaluate", *arguments, *flags])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return json.loads((out / "metrics.json").read_text()), captured.err


def headline(report):
    return {key: pytest.approx(report[key]) for key in ("R@20", "mR@20")}


def test_logit_adjustment_raises_mean_recall_and_lowers_recall(capsys, native, dataset, tmp_path):
    plain, _ = evaluate(capsys, native, dataset, tmp_path / "plain")
    adjusted, _ = evaluate(
        capsys, native, dataset, tmp_path / "la", "--logit-adjustment", "--logit-adj-tau", "0.3"
    )
    assert headline(plain) == WITHOUT and headline(adjusted) == WITH
    assert adjusted["mR@20"] > plain["mR@20"] and adjusted["R@20"] < plain["R@20"]
    assert plain["settings"]["logit_adjustment"] is False and plain["settings"]["logit_adj_tau"] is None
    assert adjusted["settings"]["logit_adjustment"] is True and adjusted["settings"]["logit_adj_tau"] == 0.3


def test_flags_override_an_official_artifact_whose_config_says_otherwise(capsys, dataset, tmp_path):
    model = constructed_model(use_freq_bias=True)
    artifact = write_official_artifact(
        tmp_path, model, epochs=(2,), config_changes={"logit_adjustment": True, "logit_adj_tau": 5.0}
    )
    plain, note = evaluate(capsys, artifact, dataset, tmp_path / "plain")
    assert headline(plain) == WITHOUT  # off, as the official evaluation without --logit_adjustment
    assert "config enables logit adjustment (tau 5.0)" in note
    adjusted, _ = evaluate(
        capsys, artifact, dataset, tmp_path / "la", "--logit-adjustment", "--logit-adj-tau", "0.3"
    )
    assert headline(adjusted) == WITH and adjusted["settings"]["logit_adj_tau"] == 0.3


def test_tau_without_the_switch_is_a_usage_error(capsys, native, dataset, tmp_path):
    arguments = ["--checkpoint", str(native), "--data", str(dataset), "--out", str(tmp_path), *EVALUATE]
    assert main(["evaluate", *arguments, "--logit-adj-tau", "0.5"]) == 2
    assert "--logit-adj-tau has no effect without --logit-adjustment" in capsys.readouterr().err


def predicate_of(graph: dict, subject: str, object_: str) -> str:
    """The predicate the graph gives the pair of objects of these classes (one object per class here)."""
    return next(
        t["predicate_name"]
        for t in graph["triplets"]
        if (t["subject_name"], t["object_name"]) == (subject, object_)
    )


def test_predict_and_the_predictor_take_the_same_switches(capsys, native, dataset, tmp_path):
    image = sorted((dataset / "images").iterdir())[0]
    graphs = {}
    for label, flags in (("plain", []), ("la", ["--logit-adjustment", "--logit-adj-tau", "0.3"])):
        out = tmp_path / label
        arguments = [str(image), "--checkpoint", str(native), "--out", str(out), "--no-progress"]
        code = main(["predict", *arguments, "--size", "64", "--max-size", "64", *flags])
        assert code == 0, capsys.readouterr().err
        graphs[label] = json.loads((out / f"{image.stem}.json").read_text())
    assert predicate_of(graphs["plain"], "a", "b") == predicate_of(graphs["plain"], "c", "d") == "common"
    assert (
        predicate_of(graphs["la"], "a", "b") == "rare one"
        and predicate_of(graphs["la"], "c", "d") == "rare two"
    )
    assert predicate_of(graphs["la"], "b", "a") == "common"  # 40 training counts outweigh the prior
    summary = json.loads((tmp_path / "la" / "summary.json").read_text())
    assert summary["settings"]["logit_adjustment"] is True and summary["settings"]["logit_adj_tau"] == 0.3
    predictor = SceneGraphPredictor(constructed_model(), logit_adjustment=True, size=64, max_size=64)
    assert predicate_of(predictor.predict(image).to_dict(), "a", "b") == "rare one"
    assert predictor.config.logit_adj_tau == 0.3  # the config's tau, kept
