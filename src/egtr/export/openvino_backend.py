"""The OpenVINO backend: an exported `model.xml` (or `model.onnx`) compiled for the CPU.

Precision is OpenVINO's inference precision hint, always set explicitly: fp32 (exact; without the hint
OpenVINO computes in bf16 on CPUs that have it), or bf16 / fp16 where the CPU computes them natively
(OpenVINO's CPU capabilities BF16 / FP16); by default the export's own (its metadata: fp32 unless exported
with --precision bf16). Asking for a precision the CPU lacks is an error, not a silent fallback. In an
INT8 export (NNCF) the quantized layers compute in int8 and the rest in this precision.

Shapes: the model is compiled for the exact input shape (batch, height, width) and recompiled when the
shape changes; after `static_shapes` (default 4) such compilations it is compiled once for dynamic shapes
and stays so. A static compilation runs faster and needs far less memory, which suits folders and videos
of equal-size images; the dynamic one avoids recompiling for every new size of a mixed folder
(BENCHMARKS.md, "OpenVINO: static and dynamic shapes", has the numbers).
"""

from __future__ import annotations

from pathlib import Path

from torch import Tensor

from egtr.export.exported import ExportedModel, chosen_precision
from egtr.export.formats import runtime
from egtr.export.layout import model_file
from egtr.export.metadata import KEYS, OUTPUT_NAMES, ExportMetadata
from egtr.export.openvino_export import read_rt_metadata
from egtr.inference.backend import RawOutputs

PRECISION_HINTS = {"fp32": "f32", "bf16": "bf16", "fp16": "f16"}
CAPABILITIES = {"fp32": "FP32", "bf16": "BF16", "fp16": "FP16"}
DEVICE = "CPU"
STATIC_SHAPES = 4  # input shapes compiled one at a time before one dynamic compilation takes over


def supported_precisions() -> list[str]:
    """The precisions OpenVINO's CPU plugin computes natively on this machine."""
    import openvino as ov

    capabilities = set(ov.Core().get_property(DEVICE, "OPTIMIZATION_CAPABILITIES"))
    return [precision for precision, flag in CAPABILITIES.items() if flag in capabilities]


def check_native(precision: str) -> str:
    """`precision` when OpenVINO runs it natively on this CPU; ValueError otherwise."""
    runtime("openvino").check_precision(precision)
    supported = supported_precisions()
    if precision not in supported:
        raise ValueError(
            f"this CPU has no native {precision} for OpenVINO (it computes {', '.join(supported)}); "
            "use --precision fp32"
        )
    return precision


class OpenVinoBackend(ExportedModel):
    """Compiles `path` (an export folder, its model.xml, or a model.onnx) for OpenVINO's CPU device;
    `threads` = inference threads (default: OpenVINO's choice); `static_shapes`: see the module docstring."""

    name = "openvino"

    def __init__(
        self,
        path: str | Path,
        precision: str | None = None,
        threads: int | None = None,
        static_shapes: int = STATIC_SHAPES,
    ) -> None:
        import openvino as ov

        if precision is not None:  # refused before the file is read
            check_native(precision)
        file = model_file(path, self.name)
        core = ov.Core()
        try:
            model = core.read_model(file)
        except RuntimeError as error:
            raise ValueError(f"{file}: OpenVINO cannot read it ({error})") from error
        metadata = ExportMetadata.from_strings(read_rt_metadata(model, KEYS), str(file))
        precision = check_native(chosen_precision(self.name, precision, metadata))
        self.options = {"INFERENCE_PRECISION_HINT": PRECISION_HINTS[precision], "PERFORMANCE_HINT": "LATENCY"}
        if threads:
            self.options["INFERENCE_NUM_THREADS"] = threads
        self.core, self.model = core, model
        self.compiled, self.shape = None, None  # the current compilation and its shape (None: dynamic)
        self.static_shapes, self.static_compilations = static_shapes, 0
        super().__init__(file, metadata, precision)

    def compiled_for(self, batch: int, height: int, width: int):
        """The compiled model for inputs of this shape (see the module docstring)."""
        shape = (batch, height, width)
        if self.compiled is not None and (self.shape is None or self.shape == shape):
            return self.compiled
        self.compiled = None  # free the previous compilation first
        if self.static_compilations < self.static_shapes:
            self.static_compilations += 1
            self.model.reshape({"pixel_values": [batch, 3, height, width], "pixel_mask": list(shape)})
            self.shape = shape
        else:
            self.model.reshape({"pixel_values": [-1, 3, -1, -1], "pixel_mask": [-1, -1, -1]})
            self.shape = None
        self.compiled = self.core.compile_model(self.model, DEVICE, self.options)
        return self.compiled

    def run(self, pixel_values: Tensor, pixel_mask: Tensor) -> RawOutputs:
        inputs = self.inputs(pixel_values, pixel_mask)
        compiled = self.compiled_for(*inputs["pixel_mask"].shape)
        results = compiled(inputs)
        arrays = {  # a tensor may carry several names; the graph's output name is one of them
            name: results[output]
            for output in compiled.outputs
            for name in output.get_names() & set(OUTPUT_NAMES)
        }
        return self.raw_outputs(arrays, len(inputs["pixel_values"]))
