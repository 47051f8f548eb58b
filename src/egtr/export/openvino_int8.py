"""INT8 OpenVINO IR by NNCF post-training quantization (egtr.export.int8 describes what is quantized).

NNCF inserts FakeQuantize nodes on the inputs and weights of the convolutions and matrix products outside
the kept modules, calibrates them on the calibration images (min/max statistics, the `mixed` preset:
symmetric weights, asymmetric activations; the transformer model type, which adds SmoothQuant on the
linear layers and keeps layer norms, softmax and the sampling in floating point) and corrects the
biases the rounding shifts (fast bias correction). The OpenVINO CPU plugin then runs those layers in int8
(VNNI or AMX where the CPU has them) and the rest in the backend's precision. On CPUs without VNNI the
weights of every layer get half the 8-bit range (NNCF's overflow fix `enable`, as `reduce_range` for ONNX,
egtr.hardware.native_int8): the uint8 x int8 multiply-add of AVX2 saturates otherwise, and NNCF's default
(the first layer only) kept a top-100 triplet overlap of 0.49-0.72 on the AVX2 AMD EPYC (ONNX, with 7-bit
weights: 0.79-0.92).
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

from egtr.export.int8 import CalibrationSet, Int8Settings, kept_nodes, quantization_record
from egtr.export.metadata import ExportMetadata
from egtr.export.openvino_export import save_ir
from egtr.hardware import native_int8

MODEL_TYPE = "transformer"
PRESET = "mixed"


def quantize_openvino(
    file: Path, calibration: CalibrationSet, settings: Int8Settings, metadata: ExportMetadata
) -> dict:
    """Replace the IR at `file` (model.xml + model.bin) by its INT8 version; returns the quantization
    record stored in its metadata."""
    import nncf
    import openvino as ov

    nncf.set_log_level(logging.ERROR)  # NNCF logs one line per node it leaves alone
    model = ov.Core().read_model(file)
    kept = kept_nodes((op.get_friendly_name() for op in model.get_ops()), settings.keep_fp32)
    overflow_fix = nncf.OverflowFix.FIRST_LAYER if native_int8() else nncf.OverflowFix.ENABLE
    quantized = nncf.quantize(
        model,
        nncf.Dataset(calibration.inputs()),
        preset=nncf.QuantizationPreset(PRESET),
        subset_size=len(calibration.images),
        model_type=nncf.ModelType(MODEL_TYPE),
        fast_bias_correction=True,
        ignored_scope=nncf.IgnoredScope(names=kept, validate=False),
        advanced_parameters=nncf.AdvancedQuantizationParameters(overflow_fix=overflow_fix),
    )
    record = quantization_record(
        f"nncf {nncf.__version__}",
        settings,
        calibration,
        runtime=f"openvino {ov.__version__}",
        preset=PRESET,
        model_type=MODEL_TYPE,
        fast_bias_correction=True,
        overflow_fix=overflow_fix.value,
        kept_nodes=len(kept),
    )
    save_ir(quantized, file, replace(metadata, quantization=record))
    return record
