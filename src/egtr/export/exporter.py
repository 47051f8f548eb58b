"""Export a model to a folder, and open any model (checkpoint or export) as a runtime backend.

from egtr.export import export_model, load_backend
export_model(load_model("model.safetensors"), "exported", ["onnx", "openvino"])
# -> exported/model.onnx, exported/model.xml + model.bin
predictor = SceneGraphPredictor(load_backend("onnxruntime", "exported"))
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch

from egtr.data.transforms import EVAL_MAX_SIZE, EVAL_SIZE
from egtr.export.layout import FORMATS, ONNX_FILE, OPENVINO_FILE
from egtr.export.metadata import ExportMetadata
from egtr.export.onnx_export import DEFAULT_OPSET, onnx_bytes, write_onnx
from egtr.export.openvino_export import write_openvino
from egtr.inference.backend import Backend, TorchBackend
from egtr.inference.names import resolve_vocabulary
from egtr.models.egtr import EGTR

BACKENDS = ("torch", "onnxruntime", "openvino")


def export_metadata(
    model: EGTR,
    names: str | Path | dict | None = None,
    size: int = EVAL_SIZE,
    max_size: int | None = EVAL_MAX_SIZE,
    opset: int = DEFAULT_OPSET,
) -> ExportMetadata:
    """What an export of `model` stores: its config (with the resolved names when they are real names),
    the names, the preprocessing, the predicate prior, the egtr version and the opset."""
    from egtr import __version__

    if size < 1 or (max_size is not None and max_size < size):
        raise ValueError(f"size must be >= 1 and max_size >= size, got {size} and {max_size}")
    vocabulary = resolve_vocabulary(model.config, names)
    config = model.config
    if vocabulary.note is None:  # real names: the export carries them like a named checkpoint
        config = config.replace(
            class_names=vocabulary.class_names, predicate_names=vocabulary.predicate_names
        )
    rel_dist = model.rel_dist
    return ExportMetadata(
        config=config,
        class_names=vocabulary.class_names,
        predicate_names=vocabulary.predicate_names,
        size=size,
        max_size=max_size,
        rel_dist=None if rel_dist is None else rel_dist.detach().float().cpu().tolist(),
        opset=opset,
        egtr_version=__version__,
    )


def export_model(
    model: EGTR,
    out: str | Path,
    formats: str | Sequence[str] = "onnx",
    metadata: ExportMetadata | None = None,
) -> dict[str, Path]:
    """Write `model` to `out/model.onnx` (format "onnx") and/or `out/model.xml` + `model.bin` ("openvino").

    `metadata` defaults to `export_metadata(model)`. The model is traced once for all formats. Returns
    {format: model file}; raises egtr.export.ExportError naming the part of the model that cannot be
    exported.
    """
    formats = [formats] if isinstance(formats, str) else list(formats)
    unknown = [name for name in formats if name not in FORMATS]
    if unknown or not formats:
        raise ValueError(f"formats must be among {', '.join(FORMATS)}, got {formats}")
    model = model.eval().to("cpu")
    metadata = metadata or export_metadata(model)
    out = Path(out)
    serialized = onnx_bytes(model, metadata.opset)
    written = {}
    if "onnx" in formats:
        written["onnx"] = write_onnx(serialized, out / ONNX_FILE, metadata)
    if "openvino" in formats:
        written["openvino"] = write_openvino(serialized, out / OPENVINO_FILE, metadata, model)
    return written


def load_backend(
    name: str,
    path: str | Path,
    precision: str = "fp32",
    device: str | torch.device | None = None,
    threads: int | None = None,
) -> Backend:
    """A runtime backend for `path`: "torch" loads any checkpoint egtr.load_model accepts and runs it on
    `device`; "onnxruntime" and "openvino" run an export folder (or its model file) on the CPU."""
    if name not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {name!r}")
    if name == "torch":
        from egtr.checkpoints import load_model

        return TorchBackend(load_model(path), device, precision)
    if device is not None and str(device) not in ("auto", "cpu"):
        raise ValueError(f"the {name} backend runs on the CPU only, not on {device}")
    if name == "onnxruntime":
        from egtr.export.onnxruntime_backend import OnnxRuntimeBackend

        return OnnxRuntimeBackend(path, precision, threads)
    from egtr.export.openvino_backend import OpenVinoBackend

    return OpenVinoBackend(path, precision, threads)
