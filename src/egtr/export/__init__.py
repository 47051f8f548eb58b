"""Export to ONNX and OpenVINO, and the runtime backends that run the exports.

- `export_model` (exporter.py): an EGTR -> `DIR/model.onnx` or `DIR/model.xml` + `model.bin`; the graph
  returns the raw outputs (onnx_export.py), the metadata (metadata.py) carries config, names,
  preprocessing and predicate prior; failures name the part of the model (diagnosis.py);
- `load_backend` (exporter.py): "torch", "onnxruntime" or "openvino", each an
  `egtr.inference.backend.Backend` the `SceneGraphPredictor` runs;
- `compare_with_torch` (check.py): exported vs PyTorch raw outputs.
The optional packages (onnx, onnxruntime, openvino) are imported only when used.
"""

from __future__ import annotations

from egtr.lazy import lazy_attributes

_LAZY = {
    "export_model": "egtr.export.exporter",
    "export_metadata": "egtr.export.exporter",
    "load_backend": "egtr.export.exporter",
    "ExportError": "egtr.export.diagnosis",
    "ExportMetadata": "egtr.export.metadata",
    "ExportMetadataError": "egtr.export.metadata",
    "compare_with_torch": "egtr.export.check",
}

__all__ = list(_LAZY)


__getattr__ = lazy_attributes(__name__, _LAZY)
