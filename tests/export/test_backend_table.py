"""`egtr benchmark --backend ...` (egtr.export.backend_table): one row per backend and precision this machine
runs natively, each measured in its own process; with --data, the accuracy through `egtr evaluate`.
No timing is asserted, only that every row is there, measured, and as exact as its precision."""

import json
import tempfile

import pytest
import torch

from egtr import hardware
from egtr.checkpoints import save_model
from egtr.cli import main
from egtr.config import EGTRConfig
from egtr.data.synthetic import write_synthetic_dataset
from egtr.export import backend_table, formats
from egtr.export.backend_table import Variant, native_variants
from egtr.models.egtr import EGTR

TINY = dict(
    d_model=32, encoder_layers=1, decoder_layers=1, encoder_ffn_dim=32, decoder_ffn_dim=32, num_queries=8
)


def run_json(arguments, capsys) -> dict:
    code = main(["benchmark", *arguments, "--warmup", "0", "--repeats", "1", "--threads", "1", "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return json.loads(captured.out)


def test_native_variants_follow_the_format_table(monkeypatch):
    variants, skipped = native_variants()
    names = [variant.name for variant in variants]
    assert names[0] == "torch fp32" and "onnxruntime fp32" in names and "openvino fp32" in names
    assert {v.runtime for v in variants} <= set(formats.BACKENDS)
    for variant in variants:  # every precision is one its runtime declares and computes natively here
        assert variant.precision in formats.runtime(variant.runtime).precisions
    monkeypatch.setattr(hardware, "native_int8", lambda: False)
    without_int8, skipped = native_variants(("onnxruntime",))
    assert without_int8 == [Variant("onnxruntime", "fp32")]
    assert any("onnxruntime int8" in reason and "VNNI" in reason for reason in skipped)
    monkeypatch.setattr(hardware, "native_int8", lambda: True)
    for runtime in ("onnxruntime", "openvino"):  # the INT8 export in each native float precision
        chosen, _ = native_variants((runtime,))
        assert [v.precision for v in chosen if v.int8] == [v.precision for v in chosen if not v.int8]
    assert Variant("openvino", "bf16", int8=True).name == "openvino int8+bf16"
    assert Variant("openvino", "fp32", int8=True).name == "openvino int8"


def test_backend_all_gives_a_row_per_native_variant(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    config = tmp_path / "tiny.json"
    EGTRConfig.small(**TINY).to_json(config)
    report = run_json(
        ["--config", str(config), "--backend", "all", "--size", "48", "64", "--calibration-size", "1"], capsys
    )
    expected = [variant.name for variant in native_variants()[0]]
    assert [row["variant"] for row in report["rows"]] == expected
    assert "flags" in report["machine"]
    for row in report["rows"]:
        measured = row["sizes"]["48x64"]
        assert "error" not in measured, (row["variant"], measured)
        assert measured["latency_ms"] > 0 and measured["peak_process_memory_mb"] > 0
        assert row["accuracy"] is None
        if row["variant"] in ("onnxruntime fp32", "openvino fp32"):
            assert max(measured["max_abs_difference"].values()) < 1e-4
    assert not list(tmp_path.glob("egtr-benchmark-*"))  # the exports' temporary folder is gone


def test_accuracy_of_every_variant_through_egtr_evaluate(tmp_path, capsys):
    data = tmp_path / "world"
    write_synthetic_dataset(data, 12, seed=1, image_size=(48, 48), val_fraction=0.0, test_fraction=0.34)
    torch.manual_seed(0)
    checkpoint = save_model(EGTR(EGTRConfig.small(**TINY)).eval(), tmp_path / "tiny.safetensors")
    arguments = ["--checkpoint", str(checkpoint), "--backend", "onnxruntime", "--size", "48", "48"]
    arguments += ["--data", str(data), "--eval-size", "48", "--eval-max-size", "48"]
    report = run_json(arguments, capsys)
    rows = {row["variant"]: row for row in report["rows"]}
    assert set(rows) >= {"torch fp32", "onnxruntime fp32"}
    assert ("onnxruntime int8" in rows) == hardware.native_int8()
    for name in backend_table.METRICS:
        assert rows["onnxruntime fp32"]["accuracy"][name] == pytest.approx(
            rows["torch fp32"]["accuracy"][name], abs=1e-4
        )


def test_table_shows_failures_and_accuracy():
    measured = {"latency_ms": 1500.0, "cpu_ms": 2900.0, "peak_process_memory_mb": 700.0}
    rows = [
        {
            "variant": "torch fp32",
            "runtime": "torch",
            "precision": "fp32",
            "int8": False,
            "sizes": {"8x8": measured},
            "accuracy": {"R@50": 0.5, "mR@50": 0.25, "AP50": 0.75},
        },
        {
            "variant": "openvino int8",
            "runtime": "openvino",
            "precision": "fp32",
            "int8": True,
            "sizes": {"8x8": {"error": "boom"}},
            "accuracy": {"error": "no data"},
        },
    ]
    text = backend_table.table(rows)
    assert "| torch fp32 | 1.50 s | 2.90 s | 700 MB | reference | 50.0 | 25.0 | 75.0 |" in text
    assert "failed: boom" in text and "failed: no data" in text


def test_table_flags_clash(tmp_path, capsys):
    config = tmp_path / "tiny.json"
    EGTRConfig.small(**TINY).to_json(config)
    assert main(["benchmark", "--config", str(config), "--backend", "all", "--precision", "bf16"]) == 2
    assert "drop --precision" in capsys.readouterr().err
    assert main(["benchmark", "--config", str(config), "--size", "8", "8", "--size", "9", "9"]) == 2
    assert "several --size need --backend" in capsys.readouterr().err


def test_a_failing_measurement_is_a_row_error_not_a_crash(tmp_path):
    spec = {"runtime": "onnxruntime", "precision": "fp32", "path": str(tmp_path / "missing"), "size": [8, 8]}
    spec.update(warmup=0, repeats=1, threads=1, outputs=str(tmp_path / "outputs.safetensors"))
    result = backend_table.run_measurement(spec, timeout=120)
    assert set(result) == {"error"} and result["error"]
