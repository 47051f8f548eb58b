"""One run of a study: a training phase through the engine, then `result.json` written atomically.

`result.json` in the run folder marks the run as finished: it holds the effective settings, every test
metric, the minutes the (last) process took and identifying fields (`variant`, `seed`); the trainer
checkpoints are then deleted (`model.safetensors`, the best weights, stays). A run killed
before it is written resumes from the engine's `checkpoints/last.ckpt` when started again (or restarts
from scratch when it was killed before its first checkpoint). A lock file keeps two processes (a resumed
study and a leftover worker of the killed one) from training the same run at once.

Also the entry point of the worker processes of `egtr ablate --parallel N`:
`python -m egtr.studies.job --settings JSON --meta JSON --threads T`.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import shutil
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from egtr.engine.settings import TrainSettings
from egtr.files import write_text

RESULT_FILE = "result.json"
LOCK_FILE = ".run.lock"
# settings that may change between a killed study and its resumption without changing the numbers
HARDWARE_SETTINGS = ("accelerator", "devices", "num_nodes", "strategy", "num_workers")


class RunBusyError(RuntimeError):
    """Another process is training this run right now."""


def read_result(folder: Path) -> dict | None:
    """The finished run's record, or None when the run has not finished."""
    path = Path(folder) / RESULT_FILE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:  # written atomically, so only a hand-edited file gets here
        raise ValueError(f"{path}: not valid JSON ({error})") from error


def same_settings(recorded: dict[str, Any], planned: TrainSettings) -> bool:
    """True when a finished run was trained with `planned` (hardware placement aside)."""
    expected = planned.to_dict()
    return all(recorded.get(key) == value for key, value in expected.items() if key not in HARDWARE_SETTINGS)


@contextmanager
def run_lock(folder: Path) -> Iterator[None]:
    """Hold an exclusive lock on the run folder; RunBusyError when another process holds it.

    The operating system drops the lock when its process dies, so a killed run never blocks its resumption.
    """
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / LOCK_FILE, "w") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as error:
            raise RunBusyError(f"{folder}: another process is training this run") from error
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def run_job(settings: TrainSettings, meta: dict[str, Any]) -> dict:
    """Train and test the phase of `settings` (into `settings.out`) and write its `result.json`."""
    from egtr.engine.run import run_phase
    from egtr.evaluation.report import report_dict

    folder = Path(settings.out)
    with run_lock(folder):
        started = time.perf_counter()
        phase = run_phase(settings)
        metrics = report_dict(phase.metrics, {})
        metrics.pop("settings")
        record = {
            **meta,
            "minutes": (time.perf_counter() - started) / 60,
            "model": str(phase.model_path),
            "settings": settings.to_dict(),
            "metrics": metrics,
        }
        write_text(folder / RESULT_FILE, json.dumps(record, indent=2) + "\n")
        remove_trainer_checkpoints(folder)
    return record


def remove_trainer_checkpoints(folder: Path) -> None:
    """Delete a finished run's trainer checkpoints (optimizer state included: they only serve a
    resumption); its best weights stay in `model.safetensors`."""
    shutil.rmtree(Path(folder) / "checkpoints", ignore_errors=True)


def worker_command(settings: TrainSettings, meta: dict[str, Any], threads: int) -> list[str]:
    """The command line of a worker process that runs one job."""
    return [
        sys.executable,
        "-m",
        "egtr.studies.job",
        "--settings",
        json.dumps(settings.to_dict()),
        "--meta",
        json.dumps(meta),
        "--threads",
        str(threads),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="run one job of a study (used by egtr ablate --parallel)")
    parser.add_argument("--settings", required=True, help="the run's TrainSettings as JSON")
    parser.add_argument("--meta", default="{}", help="fields copied into result.json, as JSON")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args(argv)
    import torch

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    try:
        run_job(TrainSettings.from_dict(json.loads(args.settings)), json.loads(args.meta))
    except RunBusyError as error:
        print(f"egtr ablate worker: {error}", file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
