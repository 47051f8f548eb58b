"""Training runs through the command line: resume after a kill, DDP on CPU, any layout, corrupt images."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from egtr.data import load_dataset
from egtr.engine.settings import preset
from tests.engine.conftest import SIZE, equal_structure_pair, logged, run_egtr, tiny_flags, write_dataset


def checkpoint_step(path: Path) -> int:
    try:
        return int(torch.load(path, weights_only=True, map_location="cpu")["global_step"])
    except (OSError, RuntimeError, EOFError, KeyError):
        return -1


@pytest.mark.slow
@pytest.mark.parametrize("implementation", ["default", "fused"])
def test_killed_run_resumes_with_optimizer_state_and_step_count(tmp_path, implementation):
    # 4 training images in batches of 4: one optimizer step per epoch whatever the shuffle order, so an
    # uninterrupted run and a killed-and-resumed run must end with the same weights (AdamW moments included),
    # with every AdamW kernel. Up to rounding: the resumed run shuffles the 4 images into another order
    # (Lightning does not restore the sampler's random state), which changes the order of the sums in the
    # losses, for every kernel alike (`same_weights_up_to_rounding` says how much that can move a weight).
    data = write_dataset(tmp_path / "data", [0, 1, 2, 3])

    def flags(out: Path) -> list[str]:
        return [
            "train",
            *tiny_flags(out, data, 6),
            "--phase",
            "egtr",
            "--batch-size",
            "4",
            "--metrics-every",
            "0",
            "--adamw-implementation",
            implementation,
        ]

    uninterrupted = run_egtr(flags(tmp_path / "a"))
    assert uninterrupted.returncode == 0, uninterrupted.stderr[-3000:]

    command = [sys.executable, "-m", "egtr", *flags(tmp_path / "b")]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    last = tmp_path / "b" / "checkpoints" / "last.ckpt"
    deadline = time.time() + 300
    while time.time() < deadline and process.poll() is None and checkpoint_step(last) < 2:
        time.sleep(0.1)
    process.send_signal(signal.SIGKILL)
    process.wait()
    killed_at = checkpoint_step(last)
    assert 2 <= killed_at < 6, f"the run was not killed mid-way (last checkpoint at step {killed_at})"

    resumed = run_egtr(flags(tmp_path / "b"))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert checkpoint_step(last) == 6
    weights_a = load_file(tmp_path / "a" / "model.safetensors")
    weights_b = load_file(tmp_path / "b" / "model.safetensors")
    assert weights_a.keys() == weights_b.keys()
    phase = preset("synthetic", "egtr")  # the rates these runs train with
    same_weights_up_to_rounding(
        weights_b, weights_a, lr=min(phase.lr, phase.lr_backbone, phase.lr_initialized)
    )


def same_weights_up_to_rounding(got: dict, wanted: dict, lr: float) -> None:
    """Every weight within rtol 1e-5 / atol 1e-6 of the other run's, except at most 1 in 10,000, and those
    within `lr`. Why not all: AdamW divides each gradient by its own running RMS, so where a gradient is
    rounding noise (near-zero elements of the first convolutions) a reordered sum can move the weight by a
    fraction of the rate at every step. Measured on the AVX2 AMD EPYC with the fused kernel: 117 of 12.0
    million weights outside, the largest difference 1.1e-5 (the for-loop kernel: none, 3.2e-7); the Intel
    Xeon: none. A lost or reset optimizer state or step count instead changes the next update of nearly
    every weight by about `lr`, far outside both bounds."""
    outside, total = 0, 0
    for name, value in wanted.items():
        difference = (got[name] - value).abs()
        assert difference.max().item() <= lr, f"{name}: a weight moved by {difference.max().item():.2e}"
        outside += int((difference > 1e-6 + 1e-5 * value.abs()).sum())
        total += value.numel()
    assert outside <= total // 10_000, f"{outside} of {total} weights differ beyond rounding"


@pytest.mark.slow
def test_two_process_ddp_first_step_loss_equals_single_process(tmp_path):
    # two images with the same numbers of objects and relations: the sampled relation loss of the batch
    # then equals the mean of the two per-image losses, so 1 process x 2 images = 2 processes x 1 image
    data = write_dataset(tmp_path / "data", equal_structure_pair())
    common = ["--phase", "egtr", "--accelerator", "cpu", "--metrics-every", "0"]
    single = run_egtr(
        ["train", *tiny_flags(tmp_path / "single", data, 1), *common, "--batch-size", "2", "--devices", "1"]
    )
    assert single.returncode == 0, single.stderr[-3000:]
    ddp = run_egtr(
        [
            "train",
            *tiny_flags(tmp_path / "ddp", data, 1),
            *common,
            "--batch-size",
            "1",
            "--devices",
            "2",
            "--strategy",
            "ddp",
        ]
    )
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    loss_single = logged(tmp_path / "single" / "logs" / "metrics.csv", "train/loss")[0]
    loss_ddp = logged(tmp_path / "ddp" / "logs" / "metrics.csv", "train/loss")[0]
    assert loss_single[0] == loss_ddp[0] == 0
    assert loss_ddp[1] == pytest.approx(loss_single[1], rel=1e-5)


@pytest.mark.slow
def test_open_images_layout_trains_with_the_same_command(tmp_path):
    coco = write_dataset(tmp_path / "coco", list(range(4)))
    oi = tmp_path / "oi"
    (oi / "annotations").mkdir(parents=True)
    (oi / "images").mkdir()
    for split in ("train", "val", "test"):
        loaded = load_dataset(coco, split)
        entries = []
        for record in loaded.records:
            Image.open(record.image_path).save(oi / "images" / f"{record.image_id}.jpg")
            boxes = record.boxes.copy()
            boxes[:, 2:] -= 1  # the reader adds the official +1 back
            entries.append(
                {
                    "img_fn": record.image_id,
                    "img_size": [record.width, record.height],
                    "bbox": boxes.tolist(),
                    "det_labels": record.labels.tolist(),
                    "rel": record.relations.tolist(),
                }
            )
        (oi / "annotations" / f"vrd-{split}-anno.json").write_text(json.dumps(entries))
    categories = {"obj": loaded.class_names, "rel": loaded.predicate_names}
    (oi / "annotations" / "categories_dict.json").write_text(json.dumps(categories))
    result = run_egtr(
        ["train", *tiny_flags(tmp_path / "out", oi, 2), "--phase", "detector", "--protocol", "oi"]
    )
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((tmp_path / "out" / "report" / "metrics.json").read_text())
    assert "wmAP_rel" in metrics and "AP50" in metrics


def test_corrupt_image_mid_epoch_is_skipped_and_counted(tmp_path):
    data = write_dataset(tmp_path / "data", list(range(6)), eval_count=3)
    victim = load_dataset(data, "train").records[2].image_path
    victim.write_bytes(b"\x89PNG\r\n\x1a\n this is not an image")
    unreadable_test = load_dataset(data, "test").records[1].image_path
    unreadable_test.write_bytes(b"")
    result = run_egtr(
        ["train", *tiny_flags(tmp_path / "out", data, 2), "--phase", "detector", "--batch-size", "3"]
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "skipping image" in result.stderr and victim.name in result.stderr
    skipped = logged(tmp_path / "out" / "logs" / "metrics.csv", "train/skipped_images")
    assert sum(value for _, value in skipped) == 1
    assert (tmp_path / "out" / "model.safetensors").is_file()
    settings = json.loads((tmp_path / "out" / "train_settings.json").read_text())
    assert settings["max_steps"] == 2 and settings["phase"] == "detector"
    # the training-time test metrics and `egtr evaluate` treat the unreadable test image the same way
    trained = json.loads((tmp_path / "out" / "report" / "metrics.json").read_text())
    model, out = str(tmp_path / "out" / "model.safetensors"), str(tmp_path / "eval")
    sizes = ["--size", str(SIZE), "--max-size", str(SIZE)]
    evaluated = run_egtr(
        ["evaluate", "--checkpoint", model, "--data", str(data), "--out", out, "--workers", "0", *sizes]
    )
    assert evaluated.returncode == 1 and "1 test images could not be read" in evaluated.stderr
    report = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert trained["counts"]["unreadable_images"] == report["counts"]["unreadable_images"] == 1
    assert trained["counts"]["split_images"] == report["counts"]["split_images"] == 3
    for key in ("R@20", "R@100", "mR@100", "ngR@100", "AP50"):
        assert trained[key] == pytest.approx(report[key], abs=1e-6), key


@pytest.mark.slow
def test_full_recipe_chains_the_phases_and_evaluate_reads_the_result(tmp_path):
    data = write_dataset(tmp_path / "data", list(range(4)))
    flags = [flag for flag in tiny_flags(tmp_path / "unused", data, 2) if flag != "--out"]
    flags.remove(str(tmp_path / "unused"))
    result = run_egtr(
        ["train", *flags, "--recipe", "full", "--out", str(tmp_path / "run"), "--batch-size", "2"]
    )
    assert result.returncode == 0, result.stderr[-3000:]
    for phase in ("detector", "detector_finetune", "egtr", "finetune"):
        assert (tmp_path / "run" / phase / "model.safetensors").is_file(), phase
    egtr_settings = json.loads((tmp_path / "run" / "egtr" / "train_settings.json").read_text())
    finetune_settings = json.loads((tmp_path / "run" / "finetune" / "train_settings.json").read_text())
    detector_finetune = json.loads(
        (tmp_path / "run" / "detector_finetune" / "train_settings.json").read_text()
    )
    assert detector_finetune["init_from"].endswith("detector/model.safetensors")
    assert egtr_settings["init_from"].endswith("detector_finetune/model.safetensors")
    assert finetune_settings["init_from"].endswith("egtr/model.safetensors")
    assert finetune_settings["lr"] == pytest.approx(egtr_settings["lr"] / 10)
    evaluated = run_egtr(
        [
            "evaluate",
            "--checkpoint",
            str(tmp_path / "run" / "finetune"),
            "--data",
            str(data),
            "--size",
            "64",
            "--max-size",
            "64",
            "--workers",
            "0",
            "--out",
            str(tmp_path / "eval"),
            "--save-predictions",
            str(tmp_path / "eval" / "predictions.npz"),
        ]
    )
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert {"R@50", "mR@50", "AP50", "settings"} <= set(metrics)
    again = run_egtr(
        [
            "evaluate",
            "--predictions",
            str(tmp_path / "eval" / "predictions.npz"),
            "--data",
            str(data),
            "--out",
            str(tmp_path / "eval2"),
        ]
    )
    assert again.returncode == 0, again.stderr[-3000:]
    metrics_again = json.loads((tmp_path / "eval2" / "metrics.json").read_text())
    assert metrics_again["R@50"] == metrics["R@50"] and metrics_again["AP50"] == metrics["AP50"]


def test_bf16_mixed_precision_on_cpu(tmp_path):
    data = write_dataset(tmp_path / "data", list(range(4)))
    result = run_egtr(
        [
            "train",
            *tiny_flags(tmp_path / "out", data, 2),
            "--phase",
            "egtr",
            "--precision",
            "bf16-mixed",
            "--metrics-every",
            "0",
        ]
    )
    assert result.returncode == 0, result.stderr[-3000:]
    losses = logged(tmp_path / "out" / "logs" / "metrics.csv", "train/loss")
    assert losses and all(value == value for _, value in losses)  # finite, no NaN
