"""`egtr evaluate --checkpoint ... --precision`: the model runs under autocast, the report says so."""

import json

from egtr import precision
from egtr.checkpoints import save_model
from egtr.cli import main
from egtr.config import EGTRConfig
from egtr.data import load_dataset
from egtr.data.synthetic import write_synthetic_dataset
from egtr.models.egtr import EGTR


def test_bf16_evaluation_reports_its_precision_and_the_emulation_note(tmp_path, capsys, monkeypatch):
    data = tmp_path / "data"
    write_synthetic_dataset(data, 6, seed=1, image_size=(64, 64), val_fraction=0.0, test_fraction=0.5)
    split = load_dataset(data, "test")
    config = EGTRConfig.small(
        num_labels=split.num_classes, num_rel_labels=split.num_predicates, d_model=32, num_queries=8
    )
    checkpoint = save_model(EGTR(config), tmp_path / "model.safetensors")
    monkeypatch.setattr(precision, "native_bf16", lambda: False)
    common = ["evaluate", "--checkpoint", str(checkpoint), "--data", str(data), "--size", "64"]
    common += ["--max-size", "64", "--workers", "0", "--device", "cpu", "--zero-shot-split", "none"]
    assert main([*common, "--precision", "bf16", "--out", str(tmp_path / "out")]) == 0
    assert json.loads((tmp_path / "out" / "metrics.json").read_text())["settings"]["precision"] == "bf16"
    assert "note: this CPU has no native bf16" in capsys.readouterr().err
