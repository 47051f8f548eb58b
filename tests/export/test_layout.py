"""Which file a runtime runs: found by name in an export folder, or given directly."""

import pytest

from egtr.export.layout import model_file


def test_folders_files_and_preferences(tmp_path):
    (tmp_path / "model.onnx").write_bytes(b"")
    assert model_file(tmp_path, "onnxruntime") == tmp_path / "model.onnx"
    assert model_file(tmp_path, "openvino") == tmp_path / "model.onnx"  # OpenVINO reads ONNX too
    (tmp_path / "model.xml").write_text("<net/>")
    (tmp_path / "model.bin").write_bytes(b"")
    assert model_file(tmp_path, "openvino") == tmp_path / "model.xml"
    assert model_file(tmp_path / "model.onnx", "openvino") == tmp_path / "model.onnx"


def test_missing_and_wrong_files_say_what_to_do(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"no model.xml or model.onnx here .* --format openvino"):
        model_file(tmp_path, "openvino")
    with pytest.raises(FileNotFoundError, match="no such file"):
        model_file(tmp_path / "nothing.onnx", "onnxruntime")
    checkpoint = tmp_path / "model.safetensors"
    checkpoint.write_bytes(b"")
    with pytest.raises(ValueError, match="needs --backend torch"):
        model_file(checkpoint, "onnxruntime")
    (tmp_path / "alone.xml").write_text("<net/>")
    with pytest.raises(FileNotFoundError, match="alone.bin is missing"):
        model_file(tmp_path / "alone.xml", "openvino")
    with pytest.raises(ValueError, match="runtime must be one of"):
        model_file(tmp_path, "tensorrt")
