import json

import pytest

from egtr.config import CONFIG_FILE_LIMIT, EGTRConfig


def test_official_defaults():
    config = EGTRConfig.visual_genome()
    assert (config.num_labels, config.num_rel_labels, config.num_queries) == (150, 50, 200)
    assert (config.d_model, config.encoder_layers, config.decoder_layers, config.num_feature_levels) == (
        256,
        6,
        6,
        4,
    )
    assert (config.ce_loss_coefficient, config.bbox_loss_coefficient, config.giou_loss_coefficient) == (
        2,
        5,
        2,
    )
    assert (config.rel_loss_coefficient, config.connectivity_loss_coefficient) == (15, 30)
    assert (
        config.smoothing == 1e-14
        and config.rel_sample_negatives == 80
        and config.rel_sample_nonmatching == 80
    )
    assert config.use_freq_bias and not config.logit_adjustment and config.logit_adj_tau == 0.3
    assert config.num_relation_sources == 7 and config.relation_function == "concat"
    oi = EGTRConfig.open_images()
    assert (oi.num_labels, oi.num_rel_labels, oi.connectivity_loss_coefficient) == (601, 30, 90)
    assert not oi.rel_sample_nonmatching_largest


def test_json_round_trip(tmp_path):
    config = EGTRConfig.small(relation_attention_layers=[0, 2], class_names=[f"c{i}" for i in range(12)])
    path = tmp_path / "config.json"
    config.to_json(path)
    assert EGTRConfig.from_file(path) == config
    assert EGTRConfig.from_json(path.read_text()) == config
    assert EGTRConfig.from_dict(json.loads(config.to_json())) == config


def test_unknown_key_is_an_error_naming_it():
    data = EGTRConfig.small().to_dict() | {"num_lables": 3}
    with pytest.raises(ValueError, match="num_lables"):
        EGTRConfig.from_dict(data)
    with pytest.raises(ValueError, match="unknown preset"):
        EGTRConfig.preset("coco")


def test_invalid_values_are_named():
    with pytest.raises(ValueError, match="relation_function"):
        EGTRConfig.small(relation_function="mean")
    with pytest.raises(ValueError, match="backbone_depth"):
        EGTRConfig.small(backbone_depth=152)
    with pytest.raises(ValueError, match="class_names"):
        EGTRConfig.small(class_names=["a"])


def test_malformed_json_names_the_file(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text("{not json")
    with pytest.raises(ValueError, match="bad.json"):
        EGTRConfig.from_file(path)


def test_from_json_takes_text_only_and_never_reads_a_path(tmp_path):
    real = tmp_path / "config.json"
    real.write_text(EGTRConfig.small().to_json())
    for text in (str(real), "/etc/passwd", "/dev/zero"):
        with pytest.raises(ValueError, match="not valid JSON"):
            EGTRConfig.from_json(text)
    with pytest.raises(ValueError, match="expected JSON text"):
        EGTRConfig.from_json(real)
    with pytest.raises(ValueError, match="expected a JSON object"):
        EGTRConfig.from_json("[1, 2]")


def test_from_file_reads_regular_small_files_only(tmp_path):
    with pytest.raises(ValueError, match="not a regular file"):
        EGTRConfig.from_file("/dev/zero")
    big = tmp_path / "big.json"
    big.write_text(" " * (CONFIG_FILE_LIMIT + 1))
    with pytest.raises(ValueError, match="larger than"):
        EGTRConfig.from_file(big)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("num_queries", 0),
        ("num_queries", 10**9),
        ("d_model", 10**6),
        ("decoder_layers", -1),
        ("num_labels", 10**7),
        ("num_rel_labels", "50"),
        ("encoder_ffn_dim", True),
        ("logit_adj_tau", float("nan")),
        ("freq_bias_eps", 0.0),
    ],
)
def test_absurd_sizes_and_types_are_named(field, value):
    with pytest.raises(ValueError, match=field):
        EGTRConfig.small(**{field: value})


def test_class_cost_follows_ce_loss_coefficient_unless_set():
    assert EGTRConfig().class_cost is None and EGTRConfig().matching_class_cost == 2.0
    assert EGTRConfig(ce_loss_coefficient=3.0).matching_class_cost == 3.0
    assert EGTRConfig(ce_loss_coefficient=3.0, class_cost=1.0).matching_class_cost == 1.0
    assert not EGTRConfig().average_num_boxes_across_processes  # official: each process's own count
