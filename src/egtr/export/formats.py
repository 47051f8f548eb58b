"""The one table of runtimes and export formats: every backend name, export format, model file, suffix,
loader, exporter and pip extra is declared here, and `egtr export`, `--backend`, `load_backend`,
`export_model` and the error messages read them from here.

| backend       | export format | files in an export folder (preferred first) | suffixes      | extra      |
|---------------|---------------|---------------------------------------------|---------------|------------|
| `torch`       | (checkpoints) | (any file `egtr.load_model` accepts)        |               |            |
| `onnxruntime` | `onnx`        | `model.onnx`                                | `.onnx`       | `onnx`     |
| `openvino`    | `openvino`    | `model.xml` (+ `model.bin`), `model.onnx`   | `.xml` `.onnx`| `openvino` |

Nothing heavy is imported here: loaders and exporters import their packages when called, so the
command-line parsers read the names without importing torch, onnx or openvino.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

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
    path, metadata, model)`; `runtime` names the backend that checks and runs it."""

    name: str
    file: str
    runtime: str
    extra: str
    write: Callable[[bytes, Path, ExportMetadata, EGTR], Path]
    companions: tuple[str, ...] = ()  # suffixes of files written beside `file` (removed with it)


@dataclass(frozen=True)
class Runtime:
    """A `--backend NAME`: `load(path, precision, device, threads)` opens `path` as a Backend.

    `files`: the model files it runs in an export folder, preferred first (empty: it runs checkpoints);
    `suffixes`: the model-file suffixes it runs; `cpu_only`: it takes no --device other than auto/cpu.
    """

    name: str
    load: Callable[[Path, str, Any, int | None], Backend]
    extra: str | None = None
    files: tuple[str, ...] = ()
    suffixes: tuple[str, ...] = ()
    cpu_only: bool = False


def _load_torch(path: Path, precision: str, device: Any, threads: int | None) -> Backend:
    from egtr.checkpoints import load_model
    from egtr.inference.backend import TorchBackend

    return TorchBackend(load_model(path), device, precision)


def _load_onnxruntime(path: Path, precision: str, device: Any, threads: int | None) -> Backend:
    from egtr.export.onnxruntime_backend import OnnxRuntimeBackend

    return OnnxRuntimeBackend(path, precision, threads)


def _load_openvino(path: Path, precision: str, device: Any, threads: int | None) -> Backend:
    from egtr.export.openvino_backend import OpenVinoBackend

    return OpenVinoBackend(path, precision, threads)


def _write_onnx(serialized: bytes, path: Path, metadata: ExportMetadata, model: EGTR) -> Path:
    from egtr.export.onnx_export import write_onnx

    return write_onnx(serialized, path, metadata)


def _write_openvino(serialized: bytes, path: Path, metadata: ExportMetadata, model: EGTR) -> Path:
    from egtr.export.openvino_export import write_openvino

    return write_openvino(serialized, path, metadata, model)


RUNTIMES = (
    Runtime("torch", _load_torch),
    Runtime(
        "onnxruntime", _load_onnxruntime, extra="onnx", files=(ONNX_FILE,), suffixes=(".onnx",), cpu_only=True
    ),
    Runtime(
        "openvino",
        _load_openvino,
        extra="openvino",
        files=(OPENVINO_FILE, ONNX_FILE),
        suffixes=(".xml", ".onnx"),
        cpu_only=True,
    ),
)
EXPORT_FORMATS = (
    ExportFormat("onnx", ONNX_FILE, "onnxruntime", "onnx", _write_onnx),
    ExportFormat("openvino", OPENVINO_FILE, "openvino", "openvino", _write_openvino, companions=(".bin",)),
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
