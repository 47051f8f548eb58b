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

from egtr.export.formats import DEFAULT_FORMAT, FORMATS, export_format, missing_extra, runtime
from egtr.export.int8 import CalibrationSet, Int8Settings, calibration_set
from egtr.export.metadata import EXPORT_PRECISIONS, ExportMetadata
from egtr.export.onnx_export import DEFAULT_OPSET, onnx_bytes
from egtr.inference.backend import Backend
from egtr.inference.names import resolve_vocabulary
from egtr.models.egtr import EGTR
from egtr.sizes import EVAL_MAX_SIZE, EVAL_SIZE


def export_metadata(
    model: EGTR,
    names: str | Path | dict | None = None,
    size: int = EVAL_SIZE,
    max_size: int | None = EVAL_MAX_SIZE,
    opset: int = DEFAULT_OPSET,
    precision: str = "fp32",
) -> ExportMetadata:
    """What an export of `model` stores: its config (with the resolved names when they are real names),
    the names, the preprocessing, the predicate prior, the egtr version, the opset and the precision the
    backends run it in by default (the INT8 settings are added by `quantize_exports`)."""
    from egtr import __version__

    if size < 1 or (max_size is not None and max_size < size):
        raise ValueError(f"size must be >= 1 and max_size >= size, got {size} and {max_size}")
    if precision not in EXPORT_PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(EXPORT_PRECISIONS)}, got {precision!r}")
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
        precision=precision,
    )


def export_model(
    model: EGTR,
    out: str | Path,
    formats: str | Sequence[str] = DEFAULT_FORMAT,
    metadata: ExportMetadata | None = None,
    int8: Int8Settings | None = None,
) -> dict[str, Path]:
    """Write `model` to `out` in each of `formats` (formats.py: "onnx" -> `out/model.onnx`, "openvino" ->
    `out/model.xml` + `model.bin`), as INT8 models when `int8` says how (`quantize_exports`).

    `metadata` defaults to `export_metadata(model)`. The model is traced once for all formats. Returns
    {format: model file}; raises egtr.export.ExportError naming the part of the model that cannot be
    exported, MissingExtraError when a format's package is not installed, ValueError for a precision a
    format's runtime does not run.
    """
    formats = [formats] if isinstance(formats, str) else list(formats)
    if not formats:
        raise ValueError(f"formats must be among {', '.join(FORMATS)}, got none")
    chosen = [export_format(name) for name in formats]
    model = model.eval().to("cpu")
    metadata = metadata or export_metadata(model)
    for target in chosen:
        runtime(target.runtime).check_precision(metadata.precision)
    out = Path(out)
    try:
        serialized = onnx_bytes(model, metadata.opset)
    except ImportError as error:
        raise missing_extra("export", "onnx", error) from error
    written = {}
    for target in chosen:
        try:
            written[target.name] = target.write(serialized, out / target.file, metadata, model)
        except ImportError as error:
            raise missing_extra(f"the {target.name} export", target.extra, error) from error
    if int8 is not None:
        calibration = calibration_set(
            int8.calibration, int8.calibration_size, metadata.size, metadata.max_size
        )
        quantize_exports(written, calibration, int8, metadata)
    return written


def quantize_exports(
    written: dict[str, Path], calibration: CalibrationSet, settings: Int8Settings, metadata: ExportMetadata
) -> dict[str, dict]:
    """Rewrite every file of `written` ({format: model file}, from `export_model`) as its INT8 version
    (egtr.export.int8), calibrated on `calibration`; returns {format: the quantization record stored in its
    metadata}. MissingExtraError when a quantizer's package is not installed."""
    records = {}
    for name, file in written.items():
        target = export_format(name)
        try:
            records[name] = target.quantize(file, calibration, settings, metadata)
        except ImportError as error:
            raise missing_extra(f"INT8 {name} export", target.extra, error) from error
    return records


def load_backend(
    name: str,
    path: str | Path,
    precision: str | None = None,
    device: str | torch.device | None = None,
    threads: int | None = None,
) -> Backend:
    """A runtime backend (formats.py) for `path`: "torch" loads any checkpoint egtr.load_model accepts and
    runs it on `device`; "onnxruntime" and "openvino" run an export folder (or its model file) on the CPU.
    `precision` None: the export's own (fp32 for a checkpoint). MissingExtraError when the runtime's
    package is not installed."""
    chosen = runtime(name)
    if chosen.cpu_only and device is not None and str(device) not in ("auto", "cpu"):
        raise ValueError(f"the {name} backend runs on the CPU only, not on {device}")
    try:
        return chosen.load(Path(path), precision, device, threads)
    except ImportError as error:
        if chosen.extra is None:
            raise
        raise missing_extra(f"the {name} backend", chosen.extra, error) from error
