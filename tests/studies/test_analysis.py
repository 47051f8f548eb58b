"""egtr analyze: its numbers come from the model (zeroing a source's weights zeroes its probe), counts
match the data, attention agrees with --explain, and the command writes its report."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from egtr.checkpoints import save_model
from egtr.cli import main
from egtr.data import load_dataset
from egtr.data.collate import collate
from egtr.data.dataset import SceneGraphDataset
from egtr.data.transforms import eval_transform
from egtr.inference.explain import explain_pair
from egtr.studies.analysis import AnalysisOptions, analyze_split, image_pairs
from egtr.training import HungarianMatcher

from .conftest import SIZE, tiny_model

OPTIONS = AnalysisOptions(size=SIZE, max_size=SIZE, progress=False, max_unrelated_per_image=20)


def analyse(model, data):
    split = load_dataset(data, "test")
    return analyze_split(model, split.records, split.predicate_names, OPTIONS)


def test_image_pairs_keeps_every_related_pair_and_samples_the_rest():
    relations = np.array([[0, 1, 2], [0, 1, 3], [2, 0, 1], [1, 1, 0]])  # (0,1) twice, a self-relation
    pairs, related = image_pairs(relations, 4, max_unrelated=3, rng=np.random.default_rng(0))
    assert pairs[related].tolist() == [[0, 1], [2, 0]]
    unrelated = pairs[~related].tolist()
    assert len(unrelated) == 3 and all(i != j and [i, j] not in ([0, 1], [2, 0]) for i, j in unrelated)
    pairs, related = image_pairs(relations, 3, max_unrelated=100, rng=np.random.default_rng(0))
    assert len(pairs) == 6 and related.sum() == 2  # all 3 x 2 ordered pairs


def test_zeroing_a_sources_weights_removes_what_its_probe_sees(tiny_data):
    model = tiny_model(tiny_data)
    before, arrays_before = analyse(model, tiny_data)
    head = model.relation_head
    with torch.no_grad():
        for layer in (head.proj_q[0], head.proj_k[0]):
            layer.weight.zero_()
            layer.bias.zero_()
    after, arrays_after = analyse(model, tiny_data)
    assert [row["source"] for row in after["sources"]] == ["layer 1", "layer 2", "final hidden"]
    zeroed, *others = after["sources"]
    assert zeroed["probe_auc"] == 0.5  # a constant feature: every held-out pair gets the same score
    assert zeroed["probe_test_pairs"] > 0
    # its gate is sigmoid(bias) for every pair, related or not
    expected_gate = torch.sigmoid(head.rel_predictor_gate.bias).item()
    assert zeroed["gate_related"] == pytest.approx(expected_gate) == zeroed["gate_unrelated"]
    assert before["sources"][0]["probe_auc"] != 0.5
    for untouched, original in zip(others, before["sources"][1:]):
        assert untouched["probe_auc"] == pytest.approx(original["probe_auc"])
        assert untouched["gate_related"] == pytest.approx(original["gate_related"])
    # the decoder is untouched: the same attention evidence
    np.testing.assert_allclose(arrays_after["forward"], arrays_before["forward"])
    assert after["attention"] == before["attention"]


def test_counts_follow_the_data_and_attention_agrees_with_explain(tiny_data):
    model = tiny_model(tiny_data, seed=1)
    analysis, arrays = analyse(model, tiny_data)
    records = load_dataset(tiny_data, "test").records
    triplets = sum(len(np.unique(record.relations, axis=0)) for record in records)
    related = sum(len({(s, o) for s, o, _ in record.relations if s != o}) for record in records)
    objects = sum(len(record.labels) for record in records)
    assert analysis["counts"]["images"] == len(records)
    assert analysis["counts"]["related pairs"] == related
    assert analysis["counts"]["ground-truth objects"] == objects
    assert sum(analysis["failures"].values()) == triplets
    assert np.sum(analysis["confusion"]["counts"]) == triplets
    assert len(analysis["attention"]["layers"]) == 2
    # the first pair of the first image, recomputed the way `egtr predict --explain` does
    batch = collate([SceneGraphDataset(records[:1], eval_transform(SIZE, SIZE))[0]])
    with torch.inference_mode():
        outputs = model(batch["pixel_values"], batch["pixel_mask"])
    config = model.config
    matcher = HungarianMatcher.from_config(config)
    target = batch["targets"][0]
    match = matcher(outputs.logits, outputs.pred_boxes, [target["labels"]], [target["boxes"]])[0]
    query_of = dict(zip(match.target_index.tolist(), match.query_index.tolist()))
    subject, object_ = sorted({(int(s), int(o)) for s, o, _ in records[0].relations if s != o})[0]
    explanation = explain_pair(outputs, 0, query_of[subject], query_of[object_], config)
    np.testing.assert_allclose(arrays["forward"][0], explanation["attention"]["subject_to_object"], rtol=1e-6)
    np.testing.assert_allclose(
        arrays["backward"][0], explanation["attention"]["object_to_subject"], rtol=1e-6
    )
    np.testing.assert_allclose(arrays["gates"][0], explanation["gates"]["values"], rtol=1e-6)


def test_analyze_command_writes_the_report(tiny_data, tmp_path, capsys):
    checkpoint = save_model(tiny_model(tiny_data), tmp_path / "model.safetensors")
    out = tmp_path / "analysis"
    flags = [
        "--checkpoint",
        str(checkpoint),
        "--data",
        str(tiny_data),
        "--size",
        str(SIZE),
        "--max-size",
        str(SIZE),
    ]
    assert main(["analyze", *flags, "--out", str(out), "--device", "cpu"]) == 0
    for name in (
        "analysis.json",
        "analysis.md",
        "sources.png",
        "attention.png",
        "predicates.png",
        "confusion.png",
        "failures.png",
    ):
        assert (out / name).stat().st_size > 0, name
    report = json.loads((out / "analysis.json").read_text())
    assert report["settings"]["split"] == "test" and report["settings"]["size"] == SIZE
    assert "## Relation sources" in (out / "analysis.md").read_text()
    other = save_model(tiny_model(tiny_data, num_rel_labels=3), tmp_path / "other.safetensors")
    assert main(["analyze", "--checkpoint", str(other), "--data", str(tiny_data), "--out", str(out)]) == 2
    assert "3 predicates" in capsys.readouterr().err
