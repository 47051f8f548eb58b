"""Study files: the shipped ones load, per-layer variants expand, and bad files name file, variant, field."""

import json
from pathlib import Path

import pytest

from egtr.studies.study import StudyError, load_study, parse_study, shipped_studies

SHIPPED = ("frequency_bias", "relation_function", "smoothing", "sources", "techniques")


def test_every_shipped_study_loads_and_expands():
    assert tuple(shipped_studies()) == SHIPPED
    for name in SHIPPED:
        study = load_study(name).expanded(decoder_layers=3)
        assert study.name == name and len(study.variants) >= 3
        assert len({variant.slug for variant in study.variants}) == len(study.variants)


def test_sources_study_writes_one_variant_per_decoder_layer():
    study = load_study("sources").expanded(decoder_layers=3)
    layers = {v.name: v.model.get("relation_attention_layers", "unset") for v in study.variants}
    assert layers == {
        "final hidden only": [],
        "layer 1 q/k only": [0],
        "layer 2 q/k only": [1],
        "layer 3 q/k only": [2],
        "q/k of all layers": None,
        "all, gated (official)": None,
    }
    assert all(v.model["relation_use_final_hidden"] is False for v in study.variants if "q/k" in v.name)


def test_smoothing_study_plots_alpha_on_a_log_axis_with_off_included():
    study = load_study("smoothing")
    assert study.plot.x == "smoothing" and study.plot.log
    assert sorted(v.model["smoothing"] for v in study.variants) == [0.0, 1e-14, 1e-12, 1e-10, 1e-8, 1e-6]
    assert study.paper_status == "not reported"


def test_a_study_file_by_path(tmp_path):
    path = tmp_path / "mine.json"
    path.write_text(
        json.dumps({"name": "mine", "variants": [{"name": "a"}, {"name": "b", "model": {"dropout": 0}}]})
    )
    study = load_study(path)
    assert [v.slug for v in study.variants] == ["a", "b"] and study.source == str(path)


@pytest.mark.parametrize(
    "content, message",
    [
        ({"name": "x"}, "missing field 'variants'"),
        (
            {"name": "x", "variants": [{"name": "a", "model": {"no_such": 1}}]},
            "variant 1 ('a'): model: unknown EGTRConfig field",
        ),
        (
            {"name": "x", "variants": [{"name": "a", "model": {"relation_function": "max"}}]},
            "relation_function must be one of",
        ),
        (
            {"name": "x", "variants": [{"name": "a", "settings": {"seed": 3}}]},
            "unknown TrainSettings field(s) 'seed'",
        ),
        ({"name": "x", "variants": [{"name": "A b"}, {"name": "a-b"}]}, "need distinct names"),
        ({"name": "x", "variants": [{"name": "a", "paper": {"R@50": "30"}}]}, "paper.R@50 must be a number"),
        ({"name": "x", "plot": {"x": "smoothing"}, "variants": [{"name": "a"}]}, "sets no number for it"),
        (
            {"name": "x", "paper": {"status": "maybe"}, "variants": [{"name": "a"}]},
            "paper.status must be one of",
        ),
        ({"name": "x", "variant": []}, "unknown field(s) 'variant'"),
    ],
)
def test_bad_study_files_are_named_errors(content, message):
    with pytest.raises(StudyError, match=r"my\.json") as error:
        parse_study(json.dumps(content), "my.json")
    assert message in str(error.value)


def test_unknown_study_name_lists_the_shipped_ones():
    with pytest.raises(StudyError, match="smoothing"):
        load_study("no_such_study")


def test_the_documented_study_file_is_valid():
    readme = Path(__file__).parents[2] / "docs" / "studies" / "README.md"
    example = readme.read_text().split("```json\n")[1].split("```")[0]
    study = parse_study(example, str(readme))
    assert study.plot.x == "connectivity_loss_coefficient" and len(study.variants) == 3
