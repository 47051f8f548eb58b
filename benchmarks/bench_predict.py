"""`egtr predict` on a folder of photos: images/s and the whole process's peak memory, per backend and batch.

    python benchmarks/bench_predict.py                      # 200 photos of 1333 x 800, every variant
    python benchmarks/bench_predict.py --images 20 --variants torch:1 openvino:4

The photos are generated JPEGs (smooth colour waves plus noise, so they compress like photos rather than
like pure noise), all of one size, landscape. Each variant runs the real command, `python -m egtr predict
FOLDER --backend B --batch-size N --out ...` (reading and preprocessing on --workers threads, the model,
post-processing, JSON written on a background thread), in its own process: images/s is the command's own
figure (first image to last file written, model loading excluded), and the peak memory is the process's
maximum resident set (VmHWM, from wait4), loading included. The model is the Visual Genome preset with
random weights (speed does not depend on them), exported once for the onnxruntime and openvino variants.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from bench_backends import SRC, prepare

SETTINGS = {"800x1333": (800, 1333), "600x1000": (600, 1000)}  # (--size, --max-size) and photo (h, w)
VARIANTS = ("torch:1", "torch:4", "onnxruntime:1", "onnxruntime:4", "openvino:1", "openvino:4")


def write_photos(folder: Path, count: int, height: int, width: int) -> None:
    """JPEGs with smooth structure plus noise (compressing like photos rather than pure noise)."""
    rng = np.random.default_rng(0)
    rows, columns = np.mgrid[0:height, 0:width]
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        phase = rng.uniform(0, 2 * np.pi, 3)
        base = np.stack([np.sin(rows / 37 + columns / 53 + p) for p in phase], axis=-1) * 80 + 128
        pixels = np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(folder / f"photo_{index:03d}.jpg", quality=90)


def run_predict(command: list[str], environment: dict) -> tuple[dict, float, float]:
    """(the command's --json summary, wall seconds, peak resident memory in MB) of one run."""
    with tempfile.TemporaryFile() as stdout, tempfile.TemporaryFile() as stderr:
        started = time.perf_counter()
        process = subprocess.Popen(command, env=environment, stdout=stdout, stderr=stderr)
        _, status, usage = os.wait4(process.pid, 0)  # this child's own resource usage
        process.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.perf_counter() - started
        stdout.seek(0)
        stderr.seek(0)
        if process.returncode != 0:
            lines = stderr.read().decode(errors="replace").strip().splitlines()
            raise RuntimeError(lines[-1] if lines else f"exit code {process.returncode}")
        return json.loads(stdout.read()), seconds, usage.ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=int, default=200, help="photos in the folder (default: %(default)s)")
    parser.add_argument(
        "--setting", default="800x1333", choices=list(SETTINGS), help="(default: %(default)s)"
    )
    parser.add_argument(
        "--variants", nargs="+", default=list(VARIANTS), help="BACKEND:BATCH_SIZE (default: all six)"
    )
    parser.add_argument("--workers", type=int, default=2, help="reader threads (default: %(default)s)")
    parser.add_argument("--threads", type=int, help="runtime threads (default: the runtime's choice)")
    parser.add_argument("--preset", default="visual_genome", help="model preset (default: %(default)s)")
    args = parser.parse_args()
    from egtr.hardware import describe

    size, max_size = SETTINGS[args.setting]
    variants = [(name.split(":")[0], int(name.split(":")[1])) for name in args.variants]
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}
    rows = []
    with tempfile.TemporaryDirectory(prefix="egtr-bench-predict-") as directory:
        folder = Path(directory)
        prepare(folder, args.preset, {backend for backend, _ in variants})
        write_photos(folder / "photos", args.images, size, max_size)
        for backend, batch in variants:
            checkpoint = folder / ("model.safetensors" if backend == "torch" else "export")
            command = [sys.executable, "-m", "egtr", "predict", str(folder / "photos"), "--json"]
            command += ["--backend", backend, "--checkpoint", str(checkpoint), "--batch-size", str(batch)]
            command += ["--size", str(size), "--max-size", str(max_size), "--workers", str(args.workers)]
            command += ["--out", str(folder / f"out-{backend}-{batch}"), "--no-progress"]
            command += ["--threads", str(args.threads)] if args.threads else []
            try:
                summary, seconds, memory = run_predict(command, environment)
                row = {
                    "backend": backend,
                    "batch_size": batch,
                    "images_per_second": summary["images_per_second"],
                }
                row.update(seconds=seconds, peak_process_memory_mb=memory, predicted=summary["done_now"])
            except RuntimeError as error:
                row = {"backend": backend, "batch_size": batch, "error": str(error)}
            rows.append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)
    print(describe())
    print(f"{args.preset} preset, {args.images} photos of {max_size}x{size}, --workers {args.workers}")
    print("| backend | --batch-size | images/s | whole run (incl. loading) | peak process memory |")
    print("|---|---:|---:|---:|---:|")
    for row in rows:
        if "error" in row:
            print(f"| {row['backend']} | {row['batch_size']} | failed: {row['error']} | | |")
        else:
            print(
                f"| {row['backend']} | {row['batch_size']} | {row['images_per_second']:.3f} | "
                f"{row['seconds']:.0f} s | {row['peak_process_memory_mb']:.0f} MB |"
            )


if __name__ == "__main__":
    main()
