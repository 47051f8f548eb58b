"""INT8 and bf16 exports of the small config: `egtr export --int8 --calibration` and `--precision bf16`.

One INT8 export of both formats (ONNX Runtime static quantization, NNCF) is made by the CLI for the
module (quantization takes tens of seconds): it must pass the export check at the reduced-precision
tolerance (egtr.export.check.check_backend), report the top-100 triplet overlap and the largest
differences on its calibration images, store its settings in its metadata and export.json, leave the
named modules in floating point, and run through `egtr predict`. The bf16 export is made where the CPU
computes bf16 natively (detected) and refused elsewhere.
"""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from egtr.checkpoints import save_model
from egtr.cli import main
from egtr.config import EGTRConfig
from egtr.data.synthetic import write_synthetic_dataset
from egtr.export.check import CHECK_BATCH, REDUCED_SHARE, calibration_inputs
from egtr.export.exporter import load_backend
from egtr.export.int8 import KEEP_FP32, calibration_files, calibration_set, kept_nodes, module_path
from egtr.export.openvino_backend import supported_precisions

from .conftest import model_with_statistics

SIDE = ["--size", "64", "--max-size", "64"]
# the overlap the INT8 small model keeps on its calibration images: about 0.9 measured (random weights,
# many near-equal pair scores); a broken export keeps about 100 / 132 pairs' share by chance of none
MIN_OVERLAP = 0.6


def trained_looking_model():
    """The small config with random frequency statistics and a box head that is not all zero."""
    model = model_with_statistics(EGTRConfig.small(num_queries=12))
    with torch.no_grad():
        model.detector.bbox_embed.layers[-1].weight.normal_(
            std=0.05, generator=torch.Generator().manual_seed(0)
        )
    return model


@pytest.fixture(scope="module")
def calibration_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("calibration")
    write_synthetic_dataset(root, 8, seed=2, image_size=(64, 64), val_fraction=0.0, test_fraction=0.25)
    return root


@pytest.fixture(scope="module")
def int8_export(tmp_path_factory, calibration_data):
    folder = tmp_path_factory.mktemp("int8")
    model = trained_looking_model()
    checkpoint = save_model(model, folder / "model.safetensors")
    out = folder / "export"
    arguments = ["export", str(checkpoint), "--format", "onnx", "openvino", "--out", str(out), *SIDE]
    arguments += ["--int8", "--calibration", str(calibration_data), "--calibration-size", "4", "--json"]
    assert main(arguments) == 0
    return model, out, json.loads((out / "export.json").read_text())


def test_int8_exports_pass_the_check_and_report_their_accuracy(int8_export):
    _, out, report = int8_export
    assert sorted(path.name for path in out.iterdir()) == [
        "export.json",
        "model.bin",
        "model.onnx",
        "model.xml",
    ]
    assert report["precision"] == "fp32" and report["checked"]
    for name in ("onnx", "openvino"):
        check = report["check"][name]
        assert check["precision"] == "int8" and check["inputs"] == "calibration" and not check["failed"]
        for output, difference in check["max_abs_difference"].items():
            if output in check["tolerance"] and output != "rel_logits":
                assert difference <= check["tolerance"][output]
        assert (
            check["max_abs_difference"]["rel_logits_without_frequency_bias"]
            <= check["tolerance"]["rel_logits"]
        )
        comparison = report["comparison"][name]
        assert comparison["images"] == 4
        assert MIN_OVERLAP <= comparison["top100_overlap"]["min"] <= comparison["top100_overlap"]["mean"] <= 1
        assert set(comparison["max_abs_difference"]) == {
            "logits",
            "pred_boxes",
            "rel_logits",
            "connectivity_logits",
        }
        assert comparison["max_abs_difference"]["logits"] > 0  # it is quantized


def test_the_settings_travel_in_the_metadata_and_export_json(int8_export, calibration_data):
    _, out, report = int8_export
    for name, runtime in (("onnx", "onnxruntime"), ("openvino", "openvino")):
        backend = load_backend(runtime, out, threads=1)
        record = report["quantization"][name]
        assert backend.quantization == record and backend.metadata.label == "int8"
        assert backend.precision == "fp32"  # the layers left in floating point
        assert (
            record["dtype"] == "int8" and record["keep_fp32"] == list(KEEP_FP32) and record["kept_nodes"] > 0
        )
        assert record["calibration"] == {
            "source": str(calibration_data),
            "split": "train",
            "images": 4,
            "skipped": 0,
        }
    assert report["quantization"]["openvino"]["tool"].startswith("nncf ")
    assert report["quantization"]["onnx"]["tool"].startswith("onnxruntime ")


def test_kept_modules_stay_in_floating_point(int8_export):
    import onnx
    import openvino as ov

    _, out, _ = int8_export
    graph = onnx.load(out / "model.onnx").graph
    produced_by = {output: node for node in graph.node for output in node.output}

    def quantized(node) -> bool:  # an input comes from a DequantizeLinear
        return any(
            name in produced_by and produced_by[name].op_type == "DequantizeLinear" for name in node.input
        )

    matrix_products = [node for node in graph.node if node.op_type in ("MatMul", "Conv")]
    kept = set(kept_nodes((node.name for node in matrix_products), KEEP_FP32))
    assert kept and any(quantized(node) for node in matrix_products if node.name not in kept)
    assert not any(quantized(node) for node in matrix_products if node.name in kept)
    assert any(
        node.name.startswith("/model/detector/backbone/") and quantized(node) for node in matrix_products
    )
    model = ov.Core().read_model(out / "model.xml")
    fake_quantized = {
        consumer.get_node().get_friendly_name()
        for op in model.get_ops()
        if op.get_type_name() == "FakeQuantize"
        for consumer in op.output(0).get_target_inputs()
    }
    assert fake_quantized and not set(kept_nodes(fake_quantized, KEEP_FP32))


def test_predict_runs_an_int8_export(int8_export, calibration_data, tmp_path):
    _, out, _ = int8_export
    image = next((calibration_data / "images").iterdir())
    arguments = [
        "predict",
        str(image),
        "--backend",
        "openvino",
        "--checkpoint",
        str(out),
        "--out",
        str(tmp_path),
    ]
    assert main([*arguments, "--no-progress"]) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["settings"]["int8"].startswith("nncf ") and summary["settings"]["precision"] == "fp32"


def test_module_names_match_whole_parts_of_node_paths():
    nodes = [
        "/model/detector/encoder/layers.0/self_attn/sampling_offsets/MatMul",
        "/model/detector/encoder/layers.0/fc1/MatMul",
        "/model/detector/bbox_embed/layers.2/MatMul",
        "/model/relation_head/rel_predictor/layers.0/MatMul",
        "/model/detector/encoder/layers.10/fc1/MatMul",
        "onnx::MatMul_12",
    ]
    assert module_path(nodes[0]) == ("detector", "encoder", "layers", "0", "self_attn", "sampling_offsets")
    assert module_path(nodes[5]) == ()
    assert kept_nodes(nodes, ["sampling_offsets", "relation_head"]) == [nodes[0], nodes[3]]
    assert kept_nodes(nodes, ["detector.bbox_embed"]) == [nodes[2]]
    assert kept_nodes(nodes, ["encoder.layers.1"]) == []  # "1" is not "10"
    assert kept_nodes(nodes, ["layers.0"]) == [nodes[0], nodes[1], nodes[3]]


def test_calibration_images_come_from_a_dataset_or_a_folder(calibration_data, tmp_path):
    files, split = calibration_files(calibration_data, 3)
    assert split == "train" and len(files) == 3 and len(set(files)) == 3
    folder = tmp_path / "photos"
    folder.mkdir()
    for index in range(5):
        Image.fromarray(np.full((20 + index, 30, 3), 40 * index, np.uint8)).save(folder / f"{index}.png")
    (folder / "broken.png").write_bytes(b"not a png")
    (folder / "notes.txt").write_text("not an image")
    files, split = calibration_files(folder, 10)
    assert split is None and [path.name for path in files] == [
        "0.png",
        "1.png",
        "2.png",
        "3.png",
        "4.png",
        "broken.png",
    ]
    assert [path.name for path in calibration_files(folder, 2)[0]] == ["0.png", "3.png"]  # spread evenly
    prepared = calibration_set(folder, 10, 32, 64)
    assert len(prepared.images) == 5 and len(prepared.skipped) == 1 and "broken.png" in prepared.skipped[0]
    assert prepared.images[0].pixel_values.shape == (3, 32, 48) and prepared.images[0].size == (20, 30)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no image files"):
        calibration_files(tmp_path / "empty", 1)


def test_bad_int8_requests_are_one_line_errors(tmp_path, capsys, calibration_data):
    checkpoint = save_model(trained_looking_model(), tmp_path / "model.safetensors")
    common = ["export", str(checkpoint), "--out", str(tmp_path / "out"), *SIDE]
    for arguments, message in (
        (["--int8"], "--int8 needs --calibration"),
        (["--keep-fp32", "relation_head"], "--keep-fp32 has no effect without --int8"),
        (["--int8", "--calibration", str(tmp_path / "missing")], "no such file or directory"),
        (["--format", "onnx", "--precision", "bf16"], "runs fp32 only"),
    ):
        assert main([*common, *arguments]) == 2
        assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.mark.skipif("bf16" not in supported_precisions(), reason="this CPU has no native bf16 for OpenVINO")
def test_a_bf16_export_runs_in_bf16_by_default_and_passes_the_check(tmp_path, calibration_data):
    model = trained_looking_model()
    checkpoint = save_model(model, tmp_path / "model.safetensors")
    out = tmp_path / "export"
    arguments = ["export", str(checkpoint), "--format", "openvino", "--precision", "bf16", "--out", str(out)]
    assert main([*arguments, *SIDE, "--calibration", str(calibration_data), "--calibration-size", "3"]) == 0
    report = json.loads((out / "export.json").read_text())
    check = report["check"]["openvino"]
    assert report["precision"] == "bf16" and check["precision"] == "bf16" and not check["failed"]
    assert (
        0 < check["max_abs_difference"]["logits"] <= REDUCED_SHARE * 10
    )  # bf16 arithmetic, within tolerance
    assert report["comparison"]["openvino"]["top100_overlap"]["mean"] >= MIN_OVERLAP
    assert load_backend("openvino", out).precision == "bf16"
    assert load_backend("openvino", out, "fp32").precision == "fp32"  # --precision still decides


def test_a_bf16_export_is_refused_where_the_cpu_lacks_bf16(tmp_path, capsys, monkeypatch):
    import egtr.export.openvino_backend as openvino_backend

    monkeypatch.setattr(openvino_backend, "supported_precisions", lambda: ["fp32"])  # an AVX2-only CPU
    checkpoint = save_model(trained_looking_model(), tmp_path / "model.safetensors")
    arguments = [
        "export",
        str(checkpoint),
        "--format",
        "openvino",
        "--precision",
        "bf16",
        "--out",
        str(tmp_path),
    ]
    assert main([*arguments, *SIDE]) == 2
    assert "no native bf16" in capsys.readouterr().err


def test_int8_exports_are_checked_on_their_calibration_images_padded_as_the_noise_batch(calibration_data):
    images = calibration_set(calibration_data, 5, 64, 96).images
    pixel_values, pixel_mask = calibration_inputs(images)
    height, width = images[0].pixel_values.shape[1:]
    assert pixel_values.shape == (CHECK_BATCH, 3, height, width) and pixel_mask.shape == (
        CHECK_BATCH,
        height,
        width,
    )
    assert pixel_mask[0].all() and torch.equal(pixel_values[0], images[0].pixel_values)
    rows, columns = height * 3 // 4, width * 3 // 4
    assert pixel_mask[1, :rows].all() and not pixel_mask[1, rows:].any()
    assert pixel_mask[2, :, :columns].all() and not pixel_mask[2, :, columns:].any()
    assert torch.equal(pixel_values[1, :, :rows], images[1].pixel_values[:, :rows])
    assert torch.equal(pixel_values[2, :, :, :columns], images[2].pixel_values[:, :, :columns])
    assert not pixel_values[1, :, rows:].any() and not pixel_values[2, :, :, columns:].any()
    assert calibration_inputs(images[:1])[0].shape[0] == 1
    with pytest.raises(ValueError, match="no calibration images"):
        calibration_inputs([])
