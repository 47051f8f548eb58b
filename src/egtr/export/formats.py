"""The one table of runtimes and export formats: every backend name, export format, model file, suffix,
loader, exporter and pip extra is declared here, and `egtr export`, `--backend`, `load_backend`,
`export_model` and the error messages read them from here.

| backend       | export format | files in an export folder (preferred first) | suffixes       | extra      |
|---------------|---------------|---------------------------------------------|----------------|------------|
| `torch`       | (checkpoints) | (any file `egtr.load_model` accepts)        |                |            |
| `onnxruntime` | `onnx`        | `model.onnx`                                | `.onnx`        | `onnx`     |
| `openvino`    | `openvino`    | `model.xml` (+ `model.bin`), `model.onnx`   | `.xml` `.onnx` | `openvino` |

| backend       | precisions       | INT8 export (`egtr export --int8`) by |
|---------------|------------------|---------------------------------------|
| `torch`       | fp32, bf16, fp16 |                                       |
| `onnxruntime` | fp32             | ONNX Runtime static quantization      |
| `openvino`    | fp32, bf16, fp16 | NNCF post-training quantization       |

`precisions`: what `--precision` may ask of the backend (bf16 / fp16 only where the CPU computes them
natively, checked when loading); each runtime's `native()` says which of them this machine computes
natively (what `egtr benchmark --backend all` measures). An INT8 export (`egtr export --int8`) is a file
of its format like any other, with the same name; its metadata says it is quantized and how
(egtr.export.metadata), and the backend runs its remaining float parts in the export's precision.

Nothing heavy is imported here: loaders and exporters import their packages when called, so the
command-line parsers read the names without importing torch, onnx or openvino.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from egtr.precision import PRECISIONS

if TYPE_CHECKING:
    from egtr.export.metadata import ExportMetadata
    from egtr.inference.backend import Backend
    from egtr.models.egtr import EGTR

ONNX_FILE = "model.onnx"
OPENVINO_FILE = "model.xml"  # with its weights in model.bin beside it
REPORT_FILE = "export.json"


class MissingExtraError(RuntimeError):
    """A runtime or exporter whose optional package is not installed; names the pip extra to install."""


@dataclass(frozen=True)
class ExportFormat:
    """What `egtr export --format NAME` writes: `file` in the export folder, by `write(serialized_onnx,
    path, metadata, model)`; `runtime` names the backend that checks and runs it. `quantize(file,
    calibration, settings, metadata)` rewrites the written file as its INT8 version (egtr.export.int8),
    with `quantizer` naming the tool."""

    name: str
    file: str
    runtime: str
    extra: str
    write: Callable[[bytes, Path, ExportMetadata, EGTR], Path]
    companions: tuple[str, ...] = ()  # suffixes of files written beside `file` (removed with it)
    quantize: Callable[..., dict] | None = None
    quantizer: str | None = None


@dataclass(frozen=True)
class Runtime:
    """A `--backend NAME`: `load(path, precision, device, threads)` opens `path` as a Backend.

    `files`: the model files it runs in an export folder, preferred first (empty: it runs checkpoints);
    `suffixes`: the model-file suffixes it runs; `cpu_only`: it takes no --device other than auto/cpu;
    `precisions`: the --precision values it accepts (the first is the default of a checkpoint);
    `native()`: those this machine computes natively (imports the runtime's package).
    """

    name: str
    load: Callable[[Path, str | None, Any, int | None], Backend]
    extra: str | None = None
    files: tuple[str, ...] = ()
    suffixes: tuple[str, ...] = ()
    cpu_only: bool = False
    precisions: tuple[str, ...] = PRECISIONS
    native: Callable[[], tuple[str, ...]] = lambda: PRECISIONS[:1]

    def check_precision(self, precision: str) -> str:
        """`precision` when this runtime runs it; ValueError naming the ones it does otherwise."""
        if precision not in self.precisions:
            raise ValueError(
                f"the {self.name} backend runs {' or '.join(self.precisions)} only, not {precision} (use "
                f"--precision {self.precisions[0]}, or a backend that runs {precision}: "
                f"{', '.join(r.name for r in RUNTIMES if precision in r.precisions)})"
            )
        return precision


def _load_torch(path: Path, precision: str | None, device: Any, threads: int | None) -> Backend:
    from egtr.checkpoints import load_model
    from egtr.inference.backend import TorchBackend

    return TorchBackend(load_model(path), device, precision or PRECISIONS[0])


def _load_onnxruntime(path: Path, precision: str | None, device: Any, threads: int | None) -> Backend:
    from egtr.export.onnxruntime_backend import OnnxRuntimeBackend

    return OnnxRuntimeBackend(path, precision, threads)


def _load_openvino(path: Path, precision: str | None, device: Any, threads: int | None) -> Backend:
    from egtr.export.openvino_backend import OpenVinoBackend

    return OpenVinoBackend(path, precision, threads)


def _native_torch() -> tuple[str, ...]:
    """fp32, and bf16 where the CPU computes it natively. Not fp16: torch's CPU fp16 autocast ran 19x
    slower than fp32 even on a CPU with AVX512-FP16 (BENCHMARKS.md, "Every backend in one table")."""
    from egtr.precision import precision_note

    return tuple(precision for precision in ("fp32", "bf16") if precision_note("cpu", precision) is None)


def _native_openvino() -> tuple[str, ...]:
    from egtr.export.openvino_backend import supported_precisions

    return tuple(precision for precision in PRECISIONS if precision in supported_precisions())


def _write_onnx(serialized: bytes, path: Path, metadata: ExportMetadata, model: EGTR) -> Path:
    from egtr.export.onnx_export import write_onnx

    return write_onnx(serialized, path, metadata)


def _write_openvino(serialized: bytes, path: Path, metadata: ExportMetadata, model: EGTR) -> Path:
    from egtr.export.openvino_export import write_openvino

    return write_openvino(serialized, path, metadata, model)


def _quantize_onnx(file: Path, calibration, settings, metadata: ExportMetadata) -> dict:
    from egtr.export.onnx_int8 import quantize_onnx

    return quantize_onnx(file, calibration, settings, metadata)


def _quantize_openvino(file: Path, calibration, settings, metadata: ExportMetadata) -> dict:
    from egtr.export.openvino_int8 import quantize_openvino

    return quantize_openvino(file, calibration, settings, metadata)


RUNTIMES = (
    Runtime("torch", _load_torch, native=_native_torch),
    Runtime(
        "onnxruntime",
        _load_onnxruntime,
        extra="onnx",
        files=(ONNX_FILE,),
        suffixes=(".onnx",),
        cpu_only=True,
        precisions=("fp32",),
    ),
    Runtime(
        "openvino",
        _load_openvino,
        extra="openvino",
        files=(OPENVINO_FILE, ONNX_FILE),
        suffixes=(".xml", ".onnx"),
        cpu_only=True,
        native=_native_openvino,
    ),
)
EXPORT_FORMATS = (
    ExportFormat(
        "onnx",
        ONNX_FILE,
        "onnxruntime",
        "onnx",
        _write_onnx,
        quantize=_quantize_onnx,
        quantizer="onnxruntime.quantization (static, QDQ)",
    ),
    ExportFormat(
        "openvino",
        OPENVINO_FILE,
        "openvino",
        "openvino",
        _write_openvino,
        companions=(".bin",),
        quantize=_quantize_openvino,
        quantizer="nncf (post-training quantization)",
    ),
)
BACKENDS = tuple(runtime.name for runtime in RUNTIMES)  # --backend choices
FORMATS = tuple(export_format.name for export_format in EXPORT_FORMATS)  # --format choices
DEFAULT_BACKEND, DEFAULT_FORMAT = BACKENDS[0], FORMATS[0]


def runtime(name: str) -> Runtime:
    """The runtime called `name`; ValueError listing the known ones otherwise."""
    for candidate in RUNTIMES:
        if candidate.name == name:
            return candidate
    raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {name!r}")


def export_format(name: str) -> ExportFormat:
    """The export format called `name`; ValueError listing the known ones otherwise."""
    for candidate in EXPORT_FORMATS:
        if candidate.name == name:
            return candidate
    raise ValueError(f"formats must be among {', '.join(FORMATS)}, got {name!r}")


def format_writing(file_name: str) -> ExportFormat:
    """The export format that writes `file_name` into an export folder."""
    return next(candidate for candidate in EXPORT_FORMATS if candidate.file == file_name)


def companions(suffix: str) -> tuple[str, ...]:
    """Suffixes of the files an export writes beside its model file of `suffix` (".xml" -> (".bin",))."""
    for candidate in EXPORT_FORMATS:
        if Path(candidate.file).suffix == suffix:
            return candidate.companions
    return ()


def missing_extra(what: str, extra: str, error: ImportError) -> MissingExtraError:
    """The error for `what` needing the pip extra `extra`, which is not installed (`error` says what)."""
    return MissingExtraError(f'{what} needs the {extra} extra: pip install "egtr[{extra}]" ({error})')
