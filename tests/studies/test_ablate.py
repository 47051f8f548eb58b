"""egtr ablate end to end on tiny settings: a two-variant study killed mid-way, resumed (in a worker
process), its table checked against the per-variant metrics files."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from egtr.cli import main
from egtr.studies.results import percent
from egtr.studies.runner import worker_environment
from tests.engine.conftest import TINY_MODEL, run_egtr, write_dataset

SIZE = 64
VARIANTS = [
    # both change the relation head's shape: the detector's weights must still load
    {
        "name": "dot, layer 2",
        "model": {
            "relation_function": "dot",
            "relation_attention_layers": [1],
            "relation_use_final_hidden": False,
        },
    },
    {"name": "plain head", "model": {"use_freq_bias": False, "use_connectivity": False}},
]
METRICS = ["R@50", "mR@50", "AP50", "AP"]


def tiny_settings() -> dict:
    model = dict(item.split("=", 1) for item in TINY_MODEL[1::2])
    return {
        "train_scales": [SIZE],
        "train_max_size": SIZE,
        "eval_size": SIZE,
        "eval_max_size": SIZE,
        "num_workers": 0,
        "batch_size": 2,
        "log_every": 1,
        "model": {key: json.loads(value) for key, value in model.items()},
    }


def table_rows(markdown: str) -> dict[str, list[str]]:
    rows = {}
    for line in markdown.split("## Variants")[0].splitlines():
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        if len(cells) == len(METRICS) + 2 and cells[0] not in ("variant", "---"):
            rows[cells[0]] = cells[1:-1]
    return rows


def test_worker_environment_spreads_threads_and_devices():
    env = worker_environment(threads=4, slot=3, gpus=["2", "5"])
    assert env["OMP_NUM_THREADS"] == "4" and env["CUDA_VISIBLE_DEVICES"] == "5"
    on_cpu = worker_environment(threads=1, slot=0, gpus=[])
    assert on_cpu["OMP_NUM_THREADS"] == "1"
    assert on_cpu.get("CUDA_VISIBLE_DEVICES") == os.environ.get("CUDA_VISIBLE_DEVICES")


@pytest.mark.slow
def test_killed_study_resumes_and_its_table_matches_the_runs(tmp_path, capsys):
    data = write_dataset(tmp_path / "data", [0, 1, 2, 3], eval_count=1)
    (tmp_path / "settings.json").write_text(json.dumps(tiny_settings()))
    (tmp_path / "study.json").write_text(
        json.dumps({"name": "tiny", "metrics": METRICS, "variants": VARIANTS})
    )
    out = tmp_path / "out"

    def command(steps: int) -> list[str]:
        return [
            "ablate", "--study", str(tmp_path / "study.json"), "--data", str(data), "--settings",
            str(tmp_path / "settings.json"), "--steps", str(steps), "--detector-steps", "1", "--seeds", "1",
            "--out", str(out),
        ]  # fmt: skip

    flags = command(steps=1)
    first, second = (out / "runs" / slug / "seed-0" / "result.json" for slug in ("dot-layer-2", "plain-head"))

    process = subprocess.Popen(
        [sys.executable, "-m", "egtr", *flags], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.time() + 300
    while time.time() < deadline and process.poll() is None and not first.is_file():
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert first.is_file() and not second.is_file(), "the study was not killed between its two variants"
    detector = out / "detector" / "result.json"
    finished_before = {path: path.stat().st_mtime_ns for path in (detector, first)}

    resumed = run_egtr([*flags, "--parallel", "2"])  # the remaining run goes to a worker process
    assert resumed.returncode == 0, resumed.stderr[-3000:] + resumed.stdout[-3000:]
    assert "shared detector: finished earlier" in resumed.stdout
    assert "1 of 2 runs finished earlier: skipped" in resumed.stdout
    assert {path: path.stat().st_mtime_ns for path in finished_before} == finished_before
    assert second.is_file() and (second.parent / "log.txt").is_file()
    for path in (first, second):  # trainer checkpoints are deleted once a run finished
        assert not (path.parent / "checkpoints").exists() and (path.parent / "model.safetensors").is_file()

    runs = {variant["name"]: json.loads(path.read_text()) for variant, path in zip(VARIANTS, (first, second))}
    rows = table_rows((out / "results.md").read_text())
    assert set(rows) == set(runs)
    for name, run in runs.items():
        assert [cell.strip("*") for cell in rows[name]] == [percent(run["metrics"][m]) for m in METRICS]
        assert run["settings"]["max_steps"] == 1 and run["settings"]["init_from"] == str(
            out / "detector" / "model.safetensors"
        )
    document = json.loads((out / "results.json").read_text())
    for variant in document["variants"]:
        assert variant["runs"][0]["metrics"] == runs[variant["name"]]["metrics"]
    assert (out / "tiny.png").stat().st_size > 0

    assert main(command(steps=2)) == 2  # in this process: no second interpreter start
    assert "finished with other settings (max_steps" in capsys.readouterr().err


def test_plan_is_seed_major_from_the_given_detector(tmp_path):
    from egtr.checkpoints import save_model
    from egtr.studies.runner import AblateOptions, plan_study
    from egtr.studies.study import load_study
    from tests.studies.conftest import tiny_model

    data = write_dataset(tmp_path / "data", [0, 1], eval_count=1)
    detector = save_model(tiny_model(data), tmp_path / "detector.safetensors")  # 2 decoder layers
    options = AblateOptions(out=tmp_path / "out", data=data, init_from=str(detector), seeds=2, first_seed=4)
    plan = plan_study(load_study("sources"), options)
    names = [variant.name for variant in plan.study.variants]
    assert names == [
        "final hidden only",
        "layer 1 q/k only",
        "layer 2 q/k only",
        "q/k of all layers",
        "all, gated (official)",
    ]
    assert [job.title for job in plan.runs] == [f"{name}, seed {seed}" for seed in (4, 5) for name in names]
    assert plan.detector is None
    for job in plan.runs:
        settings = job.settings
        assert (settings.init_from, settings.max_steps, settings.val_check_interval) == (
            str(detector),
            150,
            75,
        )
        assert settings.data == str(data) and settings.phase == "egtr" and settings.devices == 1
        assert job.folder == tmp_path / "out" / "runs" / job.meta["slug"] / f"seed-{settings.seed}"
    assert plan.runs[1].settings.model["relation_attention_layers"] == [0]
    assert plan.runs[1].settings.model["relation_use_final_hidden"] is False
