"""Training settings: official presets, overrides by file and flag, accumulation, parameter groups."""

import json

import pytest

from egtr.cli import main
from egtr.cli.train import collect_overrides
from egtr.config import EGTRConfig
from egtr.engine.optim import parameter_groups
from egtr.engine.settings import TrainSettings, merge, preset
from egtr.models.egtr import EGTR


def test_official_presets():
    detector = preset("visual_genome", "detector")
    assert (detector.lr, detector.lr_backbone, detector.max_epochs, detector.patience) == (
        1e-4,
        1e-5,
        150,
        15,
    )
    assert detector.effective_batch == 32 and detector.model["auxiliary_loss"] is True
    egtr = preset("visual_genome", "egtr")
    assert (egtr.lr, egtr.lr_backbone, egtr.lr_initialized) == (2e-6, 2e-7, 2e-4)
    assert (egtr.effective_batch, egtr.max_epochs, egtr.gradient_clip, egtr.weight_decay) == (
        64,
        50,
        0.1,
        1e-4,
    )
    finetune = preset("visual_genome", "finetune")
    assert finetune.lr == pytest.approx(egtr.lr / 10) and finetune.lr_initialized == pytest.approx(2e-5)
    assert finetune.max_epochs == 25
    oi = preset("open_images", "egtr")
    assert oi.protocol == "oi" and oi.filter_multiple_rels
    assert (egtr.eval_size, egtr.eval_max_size, egtr.flip_prob) == (800, 1333, 0.5)


def test_accumulation_from_effective_batch():
    settings = preset("visual_genome", "egtr")
    assert settings.accumulation(devices=8) == 2  # 4 x 8 x 2 = 64, the official setting
    assert settings.replace(batch_size=1).accumulation(devices=1) == 64  # one small GPU
    assert settings.replace(effective_batch=None, accumulate=3).accumulation(devices=8) == 3


@pytest.mark.parametrize(("batch_size", "devices"), [(3, 1), (4, 3), (16, 8)])
def test_an_inexact_effective_batch_is_an_error_naming_the_numbers(batch_size, devices):
    settings = preset("visual_genome", "egtr").replace(batch_size=batch_size)
    per_step = batch_size * devices
    with pytest.raises(ValueError, match=rf"effective batch 64 .* = {per_step} images per step"):
        settings.accumulation(devices=devices)
    approximate = settings.replace(allow_approximate_batch=True).accumulation(devices=devices)
    assert approximate == max(1, round(64 / per_step))


def test_train_refuses_an_inexact_batch_before_training(capsys):
    assert main(["train", "--recipe", "full", "--batch-size", "3", "--show-settings"]) == 2
    error = capsys.readouterr().err
    assert (
        "phase detector: effective batch 32 is not a multiple" in error
        and "--allow-approximate-batch" in error
    )
    assert main(["train", "--batch-size", "3", "--allow-approximate-batch", "--show-settings"]) == 0


def test_four_phases_with_the_official_detector_recipe():
    detector, finetune = preset("visual_genome", "detector"), preset("visual_genome", "detector_finetune")
    assert (finetune.lr, finetune.lr_backbone) == pytest.approx((detector.lr / 10, detector.lr_backbone / 10))
    assert (finetune.max_epochs, finetune.patience, finetune.effective_batch) == (50, 15, 32)
    assert finetune.model["auxiliary_loss"] is True
    from egtr.engine.settings import PHASES

    assert PHASES == ("detector", "detector_finetune", "egtr", "finetune")


def test_overrides_file_then_flags(tmp_path):
    path = tmp_path / "settings.json"
    path.write_text(json.dumps({"lr": 1e-3, "batch_size": 2, "model": {"use_connectivity": False}}))
    parser_args = [
        "train",
        "--settings",
        str(path),
        "--batch-size",
        "8",
        "--model",
        "smoothing=0",
        "--val-check-interval",
        "100",
        "--devices",
        "2",
    ]
    from egtr.cli import build_parser

    args = build_parser().parse_args(parser_args)
    overrides = collect_overrides(args)
    settings = merge(preset("visual_genome", "egtr"), overrides)
    assert settings.lr == 1e-3 and settings.batch_size == 8
    assert settings.val_check_interval == 100 and isinstance(settings.val_check_interval, int)
    assert settings.devices == 2
    assert settings.model == {"auxiliary_loss": False, "use_connectivity": False, "smoothing": 0}


def test_unknown_settings_are_errors_naming_them(tmp_path, capsys):
    with pytest.raises(ValueError, match="learning_rate"):
        TrainSettings.from_dict({"learning_rate": 1})
    path = tmp_path / "s.json"
    path.write_text(json.dumps({"learning_rate": 1}))
    assert main(["train", "--settings", str(path), "--show-settings"]) == 2
    assert "learning_rate" in capsys.readouterr().err


def test_show_settings_prints_the_effective_settings(capsys):
    assert (
        main(["train", "--dataset", "open_images", "--phase", "finetune", "--lr", "5e-7", "--show-settings"])
        == 0
    )
    shown = json.loads(capsys.readouterr().out)
    assert shown["lr"] == 5e-7 and shown["protocol"] == "oi" and shown["phase"] == "finetune"


def test_parameter_groups_by_name_as_officially():
    model = EGTR(EGTRConfig.small())
    groups = {g["name"]: g for g in parameter_groups(model, 1.0, 0.1, 10.0, ("relation_head.",))}
    assert set(groups) == {"main", "backbone", "initialized"}
    names = {id(p): n for n, p in model.named_parameters()}
    backbone = {names[id(p)] for p in groups["backbone"]["params"]}
    assert all(any(w in n for w in ("backbone", "reference_points", "sampling_offsets")) for n in backbone)
    assert "detector.reference_points.weight" in backbone
    assert "detector.encoder.layers.0.self_attn.sampling_offsets.weight" in backbone
    initialized = {names[id(p)] for p in groups["initialized"]["params"]}
    assert initialized == {n for n, p in model.named_parameters() if n.startswith("relation_head.")}
    trained = sum(len(g["params"]) for g in groups.values())
    assert trained == sum(1 for p in model.parameters() if p.requires_grad)  # frozen ones left out
    assert (groups["main"]["lr"], groups["backbone"]["lr"], groups["initialized"]["lr"]) == (1.0, 0.1, 10.0)
