"""EGTR -> OpenVINO IR (`model.xml` + `model.bin`): the ONNX graph of egtr.export.onnx_export, read by
OpenVINO's ONNX front end, with the egtr metadata in the model's `rt_info` under `egtr`. (OpenVINO reading
an ONNX file itself puts the file's metadata_props under `framework`; `read_rt_metadata` reads either.)

Weights stay fp32 in the file (no fp16 compression); the inference precision is chosen when the model is
compiled (egtr.export.openvino_backend).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from egtr.export.diagnosis import openvino_failure
from egtr.export.metadata import ExportMetadata
from egtr.models.egtr import EGTR

RT_INFO_SECTION = "egtr"
ONNX_RT_INFO_SECTION = "framework"


def openvino_model(serialized_onnx: bytes, model: EGTR):
    """An `openvino.Model` read from ONNX bytes; an ExportError names the module of a node it rejects."""
    import openvino as ov

    try:
        return ov.Core().read_model(serialized_onnx)
    except RuntimeError as error:
        raise openvino_failure(model, error) from error


def write_openvino(serialized_onnx: bytes, path: str | Path, metadata: ExportMetadata, model: EGTR) -> Path:
    """Write an ONNX model (from `onnx_bytes`) as OpenVINO IR at `path` (`.xml`, with the `.bin` weights
    beside it), with `metadata`, atomically. `model` (the exported EGTR) names modules in errors."""
    return save_ir(openvino_model(serialized_onnx, model), path, metadata)


def save_ir(converted, path: str | Path, metadata: ExportMetadata) -> Path:
    """Save an `openvino.Model` as IR at `path` (+ `.bin`) with `metadata` in its rt_info, atomically."""
    import openvino as ov

    path = Path(path)
    for key, value in metadata.to_strings().items():
        converted.set_rt_info(value, [RT_INFO_SECTION, key])
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=path.parent, prefix=f".{path.stem}.") as temporary:
        staged = Path(temporary) / path.name
        ov.save_model(converted, staged, compress_to_fp16=False)
        os.replace(staged.with_suffix(".bin"), path.with_suffix(".bin"))  # weights first, then the graph
        os.replace(staged, path)
    return path


def read_rt_metadata(converted, keys: tuple[str, ...]) -> dict[str, str]:
    """The egtr metadata strings found in an `openvino.Model`'s rt_info (missing keys are left out)."""
    section = RT_INFO_SECTION if converted.has_rt_info([RT_INFO_SECTION]) else ONNX_RT_INFO_SECTION
    return {
        key: converted.get_rt_info([section, key]).astype(str)
        for key in keys
        if converted.has_rt_info([section, key])
    }
