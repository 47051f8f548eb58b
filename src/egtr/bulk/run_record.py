"""DIR/run.json: what made the results in an output folder, so that a run resumes only what it would redo
identically.

    {"format": "egtr predict run", "version": 1, "egtr": "0.1.0",
     "model": {"weights_sha256": "...", "checkpoint": "model.safetensors"},
     "settings": {"layout": "jsonl", "backend": "torch", "precision": "fp32", "size": 800, ...}}

The first run into a folder writes it; every later run compares its own record with it and refuses to go on
when the weights or a setting differ, naming each difference with its flag. The weights are fingerprinted by
content: a PyTorch model by its state dict (names, dtypes, shapes and values), an export by its model files,
so that a moved or renamed checkpoint still resumes and a retrained one under the same name does not.
Compared settings are those that change what is written for an image: layout, backend, precision, INT8
quantization, image sizes, batching across sizes, triplet selection, logit adjustment, image reading, pixel
limit, the class and predicate names (by content), explanations and drawings. Not compared: the device, the
number of processes, batch size (equal-size batches are exact), reader threads, runtime threads and the shard
size.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from egtr import __version__
from egtr.export.exported import ExportedModel
from egtr.export.formats import companions
from egtr.files import read_small_text, write_text
from egtr.inference.backend import TorchBackend

RUN_FILE = "run.json"
FORMAT = "egtr predict run"
RUN_FILE_LIMIT = 1 << 20
# how a setting is spelled on the command line, where it is not simply "--" + the name with dashes
FLAGS = {
    "layout": "the output layout (--jsonl / --parquet / per-image JSON)",
    "exif_orientation": "--exif",
    "names_sha256": "--names (the class and predicate names)",
    "explain_rank": "--explain / --explain-rank",
    "draw_edges": "--draw / --draw-edges",
    "graph_layout": "--layout",
    "int8": "the export's INT8 quantization (egtr export --int8)",
}


def run_record(predictor: Any, checkpoint: str | Path, layout: str, drawing: dict | None) -> dict:
    """The record of a run of `predictor` (a SceneGraphPredictor) writing `layout`, with `drawing`
    ({"draw_edges", "graph_layout"} when drawings are written, else None)."""
    config, reading = predictor.config, predictor.reading
    vocabulary = predictor.vocabulary
    quantization = predictor.backend.quantization  # an INT8 export's settings (egtr.export.int8), else None
    names = json.dumps([vocabulary.class_names, vocabulary.predicate_names]).encode("utf-8")
    settings = {
        "layout": layout,
        "backend": predictor.backend.name,
        "precision": predictor.backend.precision,
        "int8": None if quantization is None else quantization["tool"],  # an INT8 export's quantizer
        "size": predictor.size,
        "max_size": predictor.max_size,
        "pad_mixed_sizes": predictor.pad_mixed_sizes,
        **asdict(predictor.default_selection.triplets),
        "logit_adjustment": config.logit_adjustment,
        "logit_adj_tau": config.logit_adj_tau if config.logit_adjustment else None,
        "exif_orientation": reading.exif,
        "image_conversion": reading.conversion,
        "max_pixels": reading.max_pixels,
        "names_sha256": hashlib.sha256(names).hexdigest(),
        "explain_rank": predictor.explain_rank,
        "draw_edges": drawing["draw_edges"] if drawing else None,
        "graph_layout": drawing["graph_layout"] if drawing else None,
    }
    return {
        "format": FORMAT,
        "version": 1,
        "egtr": __version__,
        "model": {"weights_sha256": weights_digest(predictor.backend), "checkpoint": str(checkpoint)},
        "settings": settings,
    }


def weights_digest(backend: Any) -> str:
    """sha256 of what the backend runs: a PyTorch model's state dict, or an export's model files."""
    digest = hashlib.sha256()
    if isinstance(backend, TorchBackend):
        for name, tensor in sorted(backend.model.state_dict().items()):
            digest.update(f"{name}:{tensor.dtype}:{list(tensor.shape)};".encode())
            digest.update(tensor.detach().reshape(-1).cpu().contiguous().view(torch.uint8).numpy())
    elif isinstance(backend, ExportedModel):
        files = [
            backend.path,
            *(backend.path.with_suffix(s) for s in companions(backend.path.suffix.lower())),
        ]
        for path in files:
            digest.update(f"{path.suffix}:".encode())
            with path.open("rb") as stream:
                for block in iter(lambda: stream.read(1 << 20), b""):
                    digest.update(block)
    else:
        raise TypeError(f"cannot fingerprint a {type(backend).__name__} backend")
    return digest.hexdigest()


def read_run(out: Path) -> dict | None:
    """The record in `out`, or None when there is none; ValueError naming the file when it is not one."""
    path = out / RUN_FILE
    if not path.exists():
        return None
    try:
        record = json.loads(read_small_text(path, RUN_FILE_LIMIT))
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not JSON ({error}); --overwrite starts afresh") from error
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise ValueError(f"{path}: not an egtr predict run record; --overwrite starts afresh")
    for key in ("model", "settings"):
        if not isinstance(record.get(key), dict):
            raise ValueError(f"{path}: {key!r} must be an object; --overwrite starts afresh")
    return record


def write_run(out: Path, record: dict) -> Path:
    return write_text(out / RUN_FILE, json.dumps(record, indent=2) + "\n", durable=True)


def differences(stored: dict, current: dict) -> list[str]:
    """What differs between two records, one readable phrase each (empty: the same run)."""
    found = []
    before, now = stored["model"], current["model"]
    if before.get("weights_sha256") != now["weights_sha256"]:
        weights = str(before.get("weights_sha256"))[:12]
        found.append(
            f"the model: {before.get('checkpoint')} (weights sha256 {weights}) there, {now['checkpoint']} "
            f"({now['weights_sha256'][:12]}) now"
        )
    for name, value in current["settings"].items():
        previous = stored["settings"].get(name, "(not recorded)")
        if previous != value:
            flag = FLAGS.get(name, "--" + name.replace("_", "-"))
            found.append(f"{flag}: {_shown(previous)} there, {_shown(value)} now")
    return found


def _shown(value: Any) -> str:
    return "off" if value is None else json.dumps(value) if isinstance(value, str) else str(value)


def check_run(out: Path, record: dict) -> None:
    """ValueError naming every difference between `record` and the one in `out` (none there: nothing)."""
    stored = read_run(out)
    if stored is None:
        return
    found = differences(stored, record)
    if found:
        raise ValueError(
            f"{out} holds results of another run ({'; '.join(found)}): resume with the same model and "
            "settings, pass --overwrite to start afresh, or choose another --out"
        )
