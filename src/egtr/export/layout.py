"""Finding the file a runtime runs in an export folder, or checking the one it was given.

`egtr export --format onnx --out DIR` writes `DIR/model.onnx`; `--format openvino` writes `DIR/model.xml`
(graph and metadata) with `DIR/model.bin` (weights); the file names are those of the format table
(formats.py). A backend is given the folder or the file itself; the file it runs is chosen from the names
that exist, never from a value stored inside a file.
"""

from __future__ import annotations

from pathlib import Path

from egtr.export.formats import RUNTIMES, companions, format_writing

EXPORTED_RUNTIMES = {runtime.name: runtime for runtime in RUNTIMES if runtime.files}


def model_file(path: str | Path, runtime: str) -> Path:
    """The model file `runtime` ("onnxruntime" or "openvino") should run for `path` (a file or folder)."""
    path = Path(path)
    if runtime not in EXPORTED_RUNTIMES:
        raise ValueError(f"runtime must be one of {', '.join(EXPORTED_RUNTIMES)}, got {runtime!r}")
    files, suffixes = EXPORTED_RUNTIMES[runtime].files, EXPORTED_RUNTIMES[runtime].suffixes
    if path.is_dir():
        for name in files:
            if (path / name).is_file():
                return path / name
        raise FileNotFoundError(
            f"{path}: no {' or '.join(files)} here for the {runtime} backend (write one with "
            f"`egtr export CHECKPOINT --format {format_writing(files[0]).name} --out {path}`)"
        )
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file or directory")
    if path.suffix.lower() not in suffixes:
        raise ValueError(
            f"{path}: the {runtime} backend runs {' or '.join(suffixes)} files exported by "
            "`egtr export` (a PyTorch checkpoint needs --backend torch)"
        )
    missing = [path.with_suffix(suffix) for suffix in companions(path.suffix.lower())]
    missing = [companion for companion in missing if not companion.is_file()]
    if missing:
        raise FileNotFoundError(f"{path}: its weights file {missing[0].name} is missing")
    return path
