"""egtr.benchmark, `egtr benchmark` and the GPU suite script, run on a tiny model on the CPU (no timing)."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from egtr import precision
from egtr.benchmark import benchmark_model, benchmark_training_step
from egtr.cli import main
from egtr.config import EGTRConfig
from egtr.models.egtr import EGTR

ROOT = Path(__file__).resolve().parents[1]
TINY = dict(
    d_model=32, encoder_layers=1, decoder_layers=1, encoder_ffn_dim=32, decoder_ffn_dim=32, num_queries=8
)


@pytest.fixture
def tiny_config(tmp_path):
    path = tmp_path / "tiny.json"
    EGTRConfig.small(**TINY).to_json(path)
    return path


def test_inference_and_training_step_protocols():
    model = EGTR(EGTRConfig.small(**TINY))
    result = benchmark_model(model, 64, 64, batch_size=2, warmup=0, repeats=1)
    assert result.precision == "fp32" and not result.compiled and result.note is None
    assert result.latency_ms > 0 and result.images_per_second == pytest.approx(2000 / result.latency_ms)
    assert result.peak_process_memory_mb > 0
    before = model.detector.class_embed.weight.detach().clone()
    step = benchmark_training_step(model, 64, 64, batch_size=2, warmup=0, repeats=1)
    assert step.step_ms > 0 and step.batch_size == 2
    assert not torch.equal(before, model.detector.class_embed.weight)  # the optimizer stepped
    with pytest.raises(ValueError, match="precision must be one of"):
        benchmark_model(model, 64, 64, precision="float16")


def test_cli_reports_precision_and_notes_emulation(tiny_config, capsys, monkeypatch):
    monkeypatch.setattr(precision, "native_bf16", lambda: False)
    code = main(
        [
            "benchmark",
            "--config",
            str(tiny_config),
            "--size",
            "64",
            "64",
            "--precision",
            "bf16",
            "--device",
            "cpu",
            "--warmup",
            "0",
            "--repeats",
            "1",
            "--training-step",
            "--training-batch-size",
            "2",
            "--json",
        ]
    )
    captured = capsys.readouterr()
    assert code == 0
    report = json.loads(captured.out)
    assert report["precision"] == "bf16" and report["training_step"]["batch_size"] == 2
    assert "no native bf16" in report["note"] and "note: this CPU has no native bf16" in captured.err
    assert "threads" in report["machine"]


def test_precision_names_need_no_torch():
    """The command line's --precision choices are egtr.precision's, importable without torch."""
    code = "import sys; from egtr.precision import PRECISIONS; print(PRECISIONS, 'torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == f"{precision.PRECISIONS} False"


def test_cli_compile_wires_torch_compile(tiny_config, capsys, monkeypatch):
    compiled = []

    def fake_compile(model):
        compiled.append(model)
        return model

    monkeypatch.setattr(torch, "compile", fake_compile)
    code = main(
        ["benchmark", "--config", str(tiny_config), "--size", "64", "64", "--compile", "--warmup", "0"]
    )
    assert code == 0 and len(compiled) == 1
    assert "torch.compile" in capsys.readouterr().out


def test_cli_refuses_cuda_without_gpu_and_bad_sizes(tiny_config, capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert main(["benchmark", "--config", str(tiny_config), "--device", "cuda"]) == 2
    assert "CUDA is not available" in capsys.readouterr().err
    assert main(["benchmark", "--config", str(tiny_config), "--size", "0", "64"]) == 2
    with pytest.raises(SystemExit):
        main(["benchmark", "--precision", "float32"])  # the old --dtype names are gone


def load_gpu_suite():
    spec = importlib.util.spec_from_file_location("gpu_suite", ROOT / "benchmarks" / "gpu_suite.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_gpu_suite_runs_on_cpu_and_refuses_a_missing_gpu(tiny_config, capsys, monkeypatch):
    """The suite's code, pointed at the CPU with a tiny model; its shell wrapper reaches it from anywhere."""
    suite = load_gpu_suite()
    arguments = ["--config", str(tiny_config), "--size", "64", "64", "--precision", "fp32", "--warmup", "0"]
    assert suite.main([*arguments, "--device", "cpu", "--repeats", "1", "--training-batch-size", "2"]) == 0
    table = capsys.readouterr().out
    assert "| 64x64 | fp32 |" in table and "14.7 FPS" in table and " ms |" in table
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert suite.main(arguments) == 2
    assert "CUDA is not available" in capsys.readouterr().err
    wrapper = subprocess.run(
        ["bash", str(ROOT / "benchmarks" / "gpu_suite.sh"), "--help"],
        capture_output=True,
        text=True,
        cwd="/",
        env={"PATH": "/usr/bin:/bin", "PYTHON": sys.executable},
    )
    assert wrapper.returncode == 0 and "--training-batch-size" in wrapper.stdout
