"""`egtr export` and `egtr predict --backend/--precision` end to end."""

import json
import shutil

import pytest
import torch

from egtr.checkpoints import save_model
from egtr.cli import main
from egtr.cli.errors import CommandError
from egtr.cli.export import check_export
from egtr.hardware import native_bf16

from .conftest import tiny_model
from .test_parity import write_image

FAST = ["--size", "32", "--max-size", "64", "--no-progress"]


def test_export_writes_both_formats_and_a_checked_report(tiny_export):
    files = sorted(path.name for path in tiny_export.folder.iterdir())
    assert files == ["export.json", "model.bin", "model.onnx", "model.xml"]  # no temporary files left
    report = json.loads((tiny_export.folder / "export.json").read_text())
    assert report["checked"] and set(report["check"]) == {"onnx", "openvino"}
    for check in report["check"].values():
        differences = check["max_abs_difference"]
        assert set(differences) == {"logits", "pred_boxes", "rel_logits"}  # no connectivity head
        assert (
            max(differences.values()) <= 1e-4 and check["precision"] == "fp32" and check["inputs"] == "noise"
        )
        assert not check["failed"]
    assert report["preprocessing"]["size"] == 32 and report["opset"] == 17
    assert report["precision"] == "fp32" and report["quantization"] is None and report["comparison"] == {}


def test_a_failed_check_removes_the_export(tiny_export, tmp_path):
    for name in ("model.onnx", "model.xml", "model.bin"):
        shutil.copy(tiny_export.folder / name, tmp_path / name)
    other = tiny_model()
    with torch.no_grad():
        other.detector.bbox_embed.layers[-1].bias += 0.5  # not the exported weights
    with pytest.raises(CommandError, match=r"openvino export differs from PyTorch \(pred_boxes by"):
        check_export(other, tmp_path / "model.xml", "openvino")
    assert sorted(path.name for path in tmp_path.iterdir()) == ["model.onnx"]


def predict(capsys, *arguments):
    code = main(["predict", *map(str, arguments)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("photos")
    for index, (width, height) in enumerate([(64, 48), (48, 64), (64, 48)]):
        write_image(folder / f"photo{index}.png", width, height, seed=index)
    return folder


@pytest.mark.parametrize("runtime", ["onnxruntime", "openvino"])
def test_predict_with_an_export_writes_the_same_json(tiny_export, photos, tmp_path, capsys, runtime):
    checkpoint = save_model(tiny_export.model, tmp_path / "model.safetensors")
    common = [photos, "--batch-size", "2", "--object-score", "sigmoid", "--top-k", "10", "--no-progress"]
    assert predict(capsys, "--checkpoint", checkpoint, "--out", tmp_path / "torch", *common, *FAST)[0] == 0
    code, _, _ = predict(
        capsys, "--backend", runtime, "--checkpoint", tiny_export.folder, "--out", tmp_path / runtime, *common
    )
    assert code == 0
    summary = json.loads((tmp_path / runtime / "summary.json").read_text())
    settings = summary["settings"]
    assert (settings["backend"], settings["precision"], settings["size"], settings["max_size"]) == (
        runtime,
        "fp32",
        32,  # the export's stored preprocessing
        64,
    )
    for index in range(3):
        expected = json.loads((tmp_path / "torch" / f"photo{index}.json").read_text())
        actual = json.loads((tmp_path / runtime / f"photo{index}.json").read_text())
        assert [t["subject"] for t in actual["triplets"]] == [t["subject"] for t in expected["triplets"]]
        assert [o["label"] for o in actual["objects"]] == [o["label"] for o in expected["objects"]]
        assert [t["score"] for t in actual["triplets"]] == pytest.approx(
            [t["score"] for t in expected["triplets"]], rel=1e-4
        )


def test_predict_refuses_what_a_backend_cannot_do(tiny_export, photos, capsys):
    checkpoint = tiny_export.folder / "model.onnx"
    for arguments, message in (
        (["--backend", "onnxruntime", "--precision", "bf16"], "runs fp32 only"),
        (["--backend", "openvino", "--explain"], "explanations need the model's attention"),
        (["--backend", "onnxruntime", "--device", "cuda"], "runs on the CPU only"),
    ):
        code, _, stderr = predict(capsys, photos, "--checkpoint", checkpoint, *arguments, *FAST)
        assert code == 2 and message in stderr, stderr
    code, _, stderr = predict(
        capsys, photos, "--backend", "torch", "--checkpoint", checkpoint, "--no-progress"
    )
    assert code == 2 and "model.onnx" in stderr


def test_predict_bf16_on_torch_says_when_the_cpu_emulates_it(tiny_export, photos, tmp_path, capsys):
    checkpoint = save_model(tiny_export.model, tmp_path / "model.safetensors")
    code, _, stderr = predict(
        capsys, photos, "--checkpoint", checkpoint, "--precision", "bf16", "--out", tmp_path, *FAST
    )
    assert code == 0, stderr
    assert ("emulated and runs slower than fp32" in stderr) == (not native_bf16())
    assert json.loads((tmp_path / "summary.json").read_text())["settings"]["precision"] == "bf16"
