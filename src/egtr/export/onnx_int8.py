"""INT8 ONNX by ONNX Runtime's static post-training quantization (egtr.export.int8 describes what is
quantized).

The fp32 graph is first cleaned by ONNX Runtime's pre-processing for quantization (constant folding,
identities removed: about 2.5x fewer nodes, so that every convolution's bias is a constant the integer
kernel can take), then every Conv and MatMul outside the kept modules gets QuantizeLinear /
DequantizeLinear pairs (QDQ format) on its input (uint8, asymmetric, min/max over the calibration
images) and its weights (int8, symmetric, per output channel); ONNX Runtime's CPU provider fuses each
pair with its operator into an integer kernel. `reduce_range` (7-bit weights) is set on CPUs without
VNNI, where the uint8 x int8 multiply-add of AVX2 can saturate, as ONNX Runtime advises
(egtr.hardware.native_int8).
"""

from __future__ import annotations

import tempfile
from dataclasses import replace
from pathlib import Path

from egtr.export.int8 import CalibrationSet, Int8Settings, kept_nodes, quantization_record
from egtr.export.metadata import ExportMetadata
from egtr.export.onnx_export import write_onnx
from egtr.hardware import native_int8

OPERATORS = ("Conv", "MatMul")


def quantize_onnx(
    file: Path, calibration: CalibrationSet, settings: Int8Settings, metadata: ExportMetadata
) -> dict:
    """Replace the ONNX model at `file` by its INT8 version; returns the quantization record stored in its
    metadata."""
    import onnx
    import onnxruntime
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter(calibration.inputs())

        def get_next(self):
            return next(self.batches, None)

    reduce_range = not native_int8()
    with tempfile.TemporaryDirectory(dir=file.parent, prefix=".int8.") as temporary:
        cleaned, quantized = Path(temporary) / "cleaned.onnx", Path(temporary) / file.name
        # symbolic shape inference gives up on the dynamic sizes; ONNX's own shape inference runs
        quant_pre_process(str(file), str(cleaned), skip_symbolic_shape=True)
        graph = onnx.load(cleaned, load_external_data=False).graph
        kept = kept_nodes((node.name for node in graph.node), settings.keep_fp32)
        quantize_static(
            str(cleaned),
            str(quantized),
            Reader(),
            quant_format=QuantFormat.QDQ,
            op_types_to_quantize=list(OPERATORS),
            nodes_to_exclude=kept,
            per_channel=True,
            reduce_range=reduce_range,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax,
        )
        record = quantization_record(
            f"onnxruntime {onnxruntime.__version__}",
            settings,
            calibration,
            format="QDQ",
            operators=list(OPERATORS),
            activations="uint8 asymmetric, min/max",
            weights="int8 symmetric per channel" + (", 7-bit range" if reduce_range else ""),
            kept_nodes=len(kept),
        )
        write_onnx(quantized.read_bytes(), file, replace(metadata, quantization=record))
    return record
