"""The ONNX Runtime backend: an exported `model.onnx` (fp32, or INT8 with fp32 in between) on the CPU
execution provider."""

from __future__ import annotations

from pathlib import Path

from torch import Tensor

from egtr.export.exported import ExportedModel, chosen_precision
from egtr.export.formats import runtime
from egtr.export.layout import model_file
from egtr.export.metadata import KEYS, ExportMetadata
from egtr.inference.backend import RawOutputs


class OnnxRuntimeBackend(ExportedModel):
    """Runs `path` (an export folder or its model.onnx) with onnxruntime; `threads` = intra-op threads
    (default: onnxruntime's choice, one per physical core)."""

    name = "onnxruntime"

    def __init__(self, path: str | Path, precision: str | None = None, threads: int | None = None) -> None:
        import onnxruntime

        if precision is not None:  # refused before the file is read
            runtime(self.name).check_precision(precision)
        file = model_file(path, self.name)
        options = onnxruntime.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        try:
            self.session = onnxruntime.InferenceSession(
                str(file), options, providers=["CPUExecutionProvider"]
            )
        except Exception as error:  # onnxruntime raises its own exception types
            raise ValueError(f"{file}: onnxruntime cannot load it ({error})") from error
        stored = self.session.get_modelmeta().custom_metadata_map
        metadata = ExportMetadata.from_strings({k: v for k, v in stored.items() if k in KEYS}, str(file))
        super().__init__(file, metadata, chosen_precision(self.name, precision, metadata))

    def run(self, pixel_values: Tensor, pixel_mask: Tensor) -> RawOutputs:
        inputs = self.inputs(pixel_values, pixel_mask)
        names = [output.name for output in self.session.get_outputs()]
        arrays = dict(zip(names, self.session.run(names, inputs)))
        return self.raw_outputs(arrays, len(inputs["pixel_values"]))
