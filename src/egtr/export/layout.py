"""Where an export lives: fixed file names in the export folder, and finding the file a backend runs.

`egtr export --format onnx --out DIR` writes `DIR/model.onnx`; `--format openvino` writes `DIR/model.xml`
(graph and metadata) with `DIR/model.bin` (weights). A backend is given the folder or the file itself;
the file it runs is chosen from the names that exist, never from a value stored inside a file.
"""

from __future__ import annotations

from pathlib import Path

ONNX_FILE = "model.onnx"
OPENVINO_FILE = "model.xml"
REPORT_FILE = "export.json"
FORMATS = ("onnx", "openvino")
# the model files each runtime reads, in order of preference (OpenVINO also reads ONNX directly)
READABLE = {"onnxruntime": (ONNX_FILE,), "openvino": (OPENVINO_FILE, ONNX_FILE)}
SUFFIXES = {"onnxruntime": (".onnx",), "openvino": (".xml", ".onnx")}


def model_file(path: str | Path, runtime: str) -> Path:
    """The model file `runtime` ("onnxruntime" or "openvino") should run for `path` (a file or folder)."""
    path = Path(path)
    if runtime not in READABLE:
        raise ValueError(f"runtime must be one of {', '.join(READABLE)}, got {runtime!r}")
    if path.is_dir():
        for name in READABLE[runtime]:
            if (path / name).is_file():
                return path / name
        wanted = " or ".join(READABLE[runtime])
        raise FileNotFoundError(
            f"{path}: no {wanted} here for the {runtime} backend (write one with "
            f"`egtr export CHECKPOINT --format {'onnx' if runtime == 'onnxruntime' else 'openvino'} "
            f"--out {path}`)"
        )
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file or directory")
    if path.suffix.lower() not in SUFFIXES[runtime]:
        raise ValueError(
            f"{path}: the {runtime} backend runs {' or '.join(SUFFIXES[runtime])} files exported by "
            "`egtr export` (a PyTorch checkpoint needs --backend torch)"
        )
    if path.suffix.lower() == ".xml" and not path.with_suffix(".bin").is_file():
        raise FileNotFoundError(f"{path}: its weights file {path.with_suffix('.bin').name} is missing")
    return path
