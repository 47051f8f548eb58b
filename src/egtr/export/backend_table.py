"""`egtr benchmark --backend all`: every backend and precision this machine runs natively, in one table.

The variants come from the format table (formats.py): each runtime in each precision its `native()` names
(PyTorch eager fp32, bf16 where the CPU computes it; ONNX Runtime fp32; OpenVINO fp32, bf16/fp16 where
native) and, where the CPU has int8 dot products (egtr.hardware.native_int8), the INT8 export of
every format that has a quantizer, run by its runtime. The exports are made from the model into a
temporary folder (INT8: calibrated on `calibration` images, `egtr export --int8`'s code) and removed with
it, unless export folders of `egtr export` are given (`exports`), whose files then replace the ones that
would be made.

Each variant runs at each size in a fresh process of its own (`python -m egtr.export.backend_table SPEC`),
so its peak memory (VmHWM: Python, the runtime, the weights and the forward together, with the heap mode
every `egtr` command uses) is its own: one random input of batch 1, the first call (OpenVINO compiles
there), `warmup` more untimed calls, then the median wall and process CPU time of `repeats` calls, and the
largest difference of each raw output from PyTorch fp32 on the same input. With a dataset, each variant
is also evaluated by `egtr evaluate --backend ...` in a process of its own (R@50, mR@50, AP50: the one
forward loop and the metrics every backend shares).
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from egtr.export.formats import BACKENDS, EXPORT_FORMATS, RUNTIMES, MissingExtraError, export_format
from egtr.export.int8 import CALIBRATION_SIZE  # as `egtr export --int8`, so that accuracy is the same

OUTPUTS = ("logits", "pred_boxes", "rel_logits", "connectivity_logits")
REFERENCE = ("torch", "fp32", False)
METRICS = ("R@50", "mR@50", "AP50")  # the accuracy columns (as metrics.json names them)


@dataclass(frozen=True)
class Variant:
    """One row: `runtime` in `precision`, on its INT8 export when `int8` (its float parts in `precision`)."""

    runtime: str
    precision: str
    int8: bool = False

    @property
    def name(self) -> str:
        if not self.int8:
            return f"{self.runtime} {self.precision}"
        return f"{self.runtime} int8" + ("" if self.precision == "fp32" else f"+{self.precision}")

    @property
    def key(self) -> tuple[str, str, bool]:
        return (self.runtime, self.precision, self.int8)


def native_variants(backends: Sequence[str] = BACKENDS) -> tuple[list[Variant], list[str]]:
    """The variants of `backends` this machine runs natively, and why the others are left out."""
    from egtr.hardware import native_int8

    variants, skipped = [], []
    for candidate in RUNTIMES:
        if candidate.name not in backends:
            continue
        try:
            native = candidate.native()
        except (ImportError, MissingExtraError) as error:
            skipped.append(f"{candidate.name}: not installed (pip extra {candidate.extra}: {error})")
            continue
        for precision in candidate.precisions:
            if precision in native:
                variants.append(Variant(candidate.name, precision))
            else:
                skipped.append(f"{candidate.name} {precision}: not computed natively (fast) here")
        for written in EXPORT_FORMATS:
            if written.runtime == candidate.name and written.quantize is not None:
                if native_int8():  # the INT8 export, its float parts in each native precision
                    variants += [
                        Variant(candidate.name, p, int8=True) for p in candidate.precisions if p in native
                    ]
                else:
                    skipped.append(f"{candidate.name} int8: this CPU has no int8 dot products (VNNI/AMX)")
    return variants, skipped


@dataclass
class Prepared:
    """Where each variant's model is: the checkpoint, and the exported files per (format, int8)."""

    checkpoint: Path
    files: dict[tuple[str, bool], Path]

    def path(self, variant: Variant) -> Path:
        if variant.runtime == "torch":
            return self.checkpoint
        return self.files[(format_of(variant.runtime), variant.int8)]


def format_of(runtime_name: str) -> str:
    """The export format a runtime runs (formats.py)."""
    return next(written.name for written in EXPORT_FORMATS if written.runtime == runtime_name)


def given_exports(folders: Sequence[Path]) -> dict[tuple[str, bool], Path]:
    """The model files of `egtr export` folders by (format, INT8?), read from each file's metadata."""
    from egtr.export.exporter import load_backend

    files: dict[tuple[str, bool], Path] = {}
    for folder in folders:
        for written in EXPORT_FORMATS:
            file = Path(folder) / written.file
            if file.is_file():
                backend = load_backend(written.runtime, file)
                files[(written.name, backend.quantization is not None)] = file
    return files


def prepare(
    model,
    checkpoint: Path | None,
    folder: Path,
    variants: Sequence[Variant],
    size: int,
    max_size: int | None,
    calibration: str | None,
    calibration_size: int,
    exports: Sequence[Path] = (),
) -> Prepared:
    """The checkpoint (saved into `folder` when there is none) and every export `variants` need, made in
    `folder` unless given in `exports`; INT8 ones calibrated on `calibration` (a dataset or image folder;
    None: `calibration_size` noise images written into `folder`)."""
    from egtr.checkpoints import save_model
    from egtr.export.exporter import export_metadata, export_model, quantize_exports
    from egtr.export.int8 import Int8Settings, calibration_set

    if checkpoint is None:
        checkpoint = save_model(model, folder / "model.safetensors")
    files = given_exports(exports)
    wanted = {(format_of(v.runtime), v.int8) for v in variants if v.runtime != "torch"}
    missing = wanted - set(files)
    if not missing:
        return Prepared(checkpoint, files)
    metadata = export_metadata(model, size=size, max_size=max_size)
    formats = sorted({name for name, _ in missing})
    started = time.perf_counter()
    written = export_model(model, folder / "fp32", formats, metadata)
    files.update({(name, False): path for name, path in written.items() if (name, False) not in files})
    int8 = sorted(name for name, quantized in missing if quantized)
    if int8:
        source = calibration or str(noise_images(folder / "calibration", calibration_size, size))
        settings = Int8Settings(source, calibration_size)
        images = calibration_set(source, calibration_size, size, max_size)
        copies = {}
        for name in int8:
            copies[name] = folder / "int8" / written[name].name
            copies[name].parent.mkdir(exist_ok=True)
            suffixes = export_format(name).companions
            for path in [written[name], *(written[name].with_suffix(suffix) for suffix in suffixes)]:
                shutil.copyfile(path, copies[name].with_suffix(path.suffix))
        quantize_exports(copies, images, settings, metadata)
        files.update({(name, True): path for name, path in copies.items()})
    print(f"exported {', '.join(formats)} in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return Prepared(checkpoint, files)


def noise_images(folder: Path, count: int, size: int) -> Path:
    """`count` smooth random RGB images (size x 4/3 size) as PNG files in `folder`: calibration images for a
    speed measurement without a dataset (their INT8 scales are not meant to be accurate)."""
    import numpy as np
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    generator = np.random.default_rng(0)
    for index in range(count):
        coarse = generator.uniform(0, 255, (size // 16 + 1, size // 12 + 1, 3)).astype(np.uint8)
        image = Image.fromarray(coarse).resize((size * 4 // 3, size), Image.Resampling.BILINEAR)
        image.save(folder / f"noise-{index}.png")
    return folder


# ------------------------------------------------------------------------------------------- worker
def peak_process_memory_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def measure(spec: dict) -> dict:
    """In a fresh process: load `spec`'s variant, run it on a random input of its size (module docstring),
    save its raw outputs to `spec["outputs"]` and return the measurements."""
    import torch
    from safetensors.torch import save_file

    from egtr.export.exporter import load_backend
    from egtr.memory import keep_freed_memory

    keep_freed_memory()  # the heap mode every egtr command runs in
    if spec["threads"]:
        torch.set_num_threads(spec["threads"])
    started = time.perf_counter()
    backend = load_backend(spec["runtime"], spec["path"], spec["precision"], "cpu", spec["threads"])
    load_seconds = time.perf_counter() - started
    height, width = spec["size"]
    pixels = torch.randn(1, 3, height, width, generator=torch.Generator().manual_seed(0))
    mask = torch.ones(1, height, width, dtype=torch.bool)
    started = time.perf_counter()
    raw = backend.run(pixels, mask)
    first_seconds = time.perf_counter() - started
    outputs = {
        name: getattr(raw, name).float().contiguous() for name in OUTPUTS if getattr(raw, name) is not None
    }
    del raw
    for _ in range(spec["warmup"]):
        backend.run(pixels, mask)
    wall, cpu = [], []
    for _ in range(spec["repeats"]):
        wall_start, cpu_start = time.perf_counter(), time.process_time()
        backend.run(pixels, mask)
        wall.append(time.perf_counter() - wall_start)
        cpu.append(time.process_time() - cpu_start)
    save_file(outputs, spec["outputs"])
    return {
        "latency_ms": 1000 * statistics.median(wall),
        "cpu_ms": 1000 * statistics.median(cpu),
        "peak_process_memory_mb": peak_process_memory_mb(),
        "load_seconds": load_seconds,
        "first_call_seconds": first_seconds,
        "threads": torch.get_num_threads(),
    }


# ------------------------------------------------------------------------------------------- driver
def _environment() -> dict[str, str]:
    """This process's environment with this egtr first on the path (the subprocesses run the same code)."""
    import egtr

    source = str(Path(egtr.__file__).resolve().parents[1])
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(p for p in (source, os.environ.get("PYTHONPATH")) if p),
    }


def _run(
    command: list[str], timeout: float, success: tuple[int, ...] = (0,)
) -> tuple[str | None, str | None]:
    """(stdout, None) of `command` finished with an exit code in `success`, or (None, why it failed)."""
    try:
        done = subprocess.run(command, env=_environment(), capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None, f"no result within {timeout:.0f} s"
    if done.returncode not in success:
        lines = [line for line in done.stderr.strip().splitlines() if line.strip()]
        return None, lines[-1] if lines else f"exit code {done.returncode}"
    return done.stdout, None


def run_measurement(spec: dict, timeout: float) -> dict:
    out, error = _run([sys.executable, "-m", "egtr.export.backend_table", json.dumps(spec)], timeout)
    return {"error": error} if error else json.loads(out.strip().splitlines()[-1])


def evaluate_variant(
    variant: Variant,
    path: Path,
    data: Path,
    split: str,
    size: int,
    max_size: int | None,
    out: Path,
    threads: int | None,
    timeout: float,
) -> dict:
    """R@50, mR@50, AP50 of `variant` on `data`'s `split` through `egtr evaluate --backend ...`."""
    command = [
        sys.executable,
        "-m",
        "egtr",
        "evaluate",
        "--checkpoint",
        str(path),
        "--backend",
        variant.runtime,
    ]
    command += ["--precision", variant.precision, "--data", str(data), "--split", split, "--size", str(size)]
    command += ["--max-size", str(max_size)] if max_size else []
    command += ["--threads", str(threads)] if threads else []
    command += ["--out", str(out)]
    _, error = _run(command, timeout, success=(0, 1))  # 1: some images were unreadable (and counted)
    if error:
        return {"error": error}
    metrics = json.loads((out / "metrics.json").read_text())
    return {name: metrics.get(name) for name in METRICS}


def differences(reference: Path, candidate: Path) -> dict[str, float]:
    from safetensors.torch import load_file

    expected, got = load_file(str(reference)), load_file(str(candidate))
    return {name: float((got[name] - expected[name]).abs().max()) for name in expected if name in got}


def backend_table(
    model,
    checkpoint: Path | None,
    variants: Sequence[Variant],
    sizes: Sequence[tuple[int, int]],
    *,
    warmup: int = 1,
    repeats: int = 3,
    threads: int | None = None,
    data: Path | None = None,
    split: str = "test",
    eval_size: int = 800,
    eval_max_size: int | None = 1333,
    calibration: str | None = None,
    calibration_size: int = CALIBRATION_SIZE,
    exports: Sequence[Path] = (),
    timeout: float = 3600,
    progress=None,
) -> list[dict]:
    """Measure every variant at every size, each in its own process (module docstring); with `data`,
    evaluate each once. One row per variant: {"variant", "sizes": {"HxW": measurements or {"error"}},
    "accuracy": {metric: value} or {"error"} or None}. `progress(text)` hears of each finished step."""
    variants = [Variant(*REFERENCE), *(v for v in dict.fromkeys(variants) if v.key != REFERENCE)]
    rows = [
        {
            "variant": v.name,
            "runtime": v.runtime,
            "precision": v.precision,
            "int8": v.int8,
            "sizes": {},
            "accuracy": None,
        }
        for v in variants
    ]
    with tempfile.TemporaryDirectory(prefix="egtr-benchmark-") as directory:
        folder = Path(directory)
        calibration = calibration or (str(data) if data else None)
        prepared = prepare(
            model,
            checkpoint,
            folder,
            variants,
            eval_size,
            eval_max_size,
            calibration,
            calibration_size,
            exports,
        )
        for height, width in sizes:
            label = f"{height}x{width}"
            reference = folder / f"outputs-{label}-reference.safetensors"
            for variant, row in zip(variants, rows):
                outputs = reference if variant.key == REFERENCE else folder / f"outputs-{label}.safetensors"
                spec = {
                    "runtime": variant.runtime,
                    "precision": variant.precision,
                    "path": str(prepared.path(variant)),
                    "size": [height, width],
                    "warmup": warmup,
                    "repeats": repeats,
                    "threads": threads,
                    "outputs": str(outputs),
                }
                result = run_measurement(spec, timeout)
                if "error" not in result and variant.key != REFERENCE and reference.is_file():
                    result["max_abs_difference"] = differences(reference, outputs)
                row["sizes"][label] = result
                if progress:
                    progress(json.dumps({"variant": variant.name, "size": label, **result}))
        if data is not None:
            for variant, row in zip(variants, rows):
                out = folder / f"evaluate-{variant.name.replace(' ', '-')}"
                row["accuracy"] = evaluate_variant(
                    variant,
                    prepared.path(variant),
                    data,
                    split,
                    eval_size,
                    eval_max_size,
                    out,
                    threads,
                    timeout,
                )
                if progress:
                    progress(json.dumps({"variant": variant.name, "accuracy": row["accuracy"]}))
    return rows


def table(rows: list[dict]) -> str:
    """The rows as one Markdown table: per size latency, CPU time and peak memory; the largest raw-output
    difference from PyTorch fp32 (at the first size); the accuracy columns when evaluated."""
    sizes = list(rows[0]["sizes"]) if rows else []
    evaluated = any(row["accuracy"] is not None for row in rows)
    header = ["variant"]
    for size in sizes:
        header += [f"{size} latency", f"{size} CPU time", f"{size} peak memory"]
    header += ["max abs diff vs torch fp32 (logits / boxes / rel / conn.)"]
    header += list(METRICS) if evaluated else []
    alignment = "|---|" + "---:|" * (3 * len(sizes)) + "---|" + "---:|" * (len(METRICS) if evaluated else 0)
    lines = ["| " + " | ".join(header) + " |", alignment]
    for row in rows:
        cells = [row["variant"]]
        for size in sizes:
            result = row["sizes"][size]
            if "error" in result:
                cells += [f"failed: {result['error']}", "", ""]
                continue
            cells += [
                _duration(result["latency_ms"]),
                _duration(result["cpu_ms"]),
                f"{result['peak_process_memory_mb']:.0f} MB",
            ]
        first = row["sizes"][sizes[0]] if sizes else {}
        diff = first.get("max_abs_difference")
        cells.append(
            " / ".join(f"{diff[n]:.1e}" for n in OUTPUTS if n in diff)
            if diff
            else ("reference" if (row["runtime"], row["precision"], row["int8"]) == REFERENCE else "")
        )
        if evaluated:
            accuracy = row["accuracy"] or {}
            if "error" in accuracy:
                cells += [f"failed: {accuracy['error']}"] + [""] * (len(METRICS) - 1)
            else:
                cells += ["" if accuracy.get(m) is None else f"{100 * accuracy[m]:.1f}" for m in METRICS]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _duration(milliseconds: float) -> str:
    return f"{milliseconds / 1000:.2f} s" if milliseconds >= 1000 else f"{milliseconds:.1f} ms"


if __name__ == "__main__":  # the worker of one measurement (run_measurement)
    print(json.dumps(measure(json.loads(sys.argv[1]))))
