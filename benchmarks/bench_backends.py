"""Every way to run the network, in one run on one machine: latency, images/s, peak memory, exactness.

The table of every backend and precision of the format table that the machine runs natively, INT8 exports
and accuracy included, is `egtr benchmark --backend all` (egtr.export.backend_table); this script adds what
lies outside that table: torch.compile, OpenVINO compiled for any shape, and an older egtr (`--baseline-src`).

    python benchmarks/bench_backends.py                       # both sizes, every variant
    python benchmarks/bench_backends.py --baseline-src /tmp/egtr-baseline/src   # + an older egtr

Variants (batch 1, the Visual Genome preset with random weights and random frequency statistics, one
random input per size): PyTorch fp32 eager, PyTorch bf16 autocast, PyTorch fp32 under torch.compile, ONNX
Runtime fp32 and OpenVINO fp32 (and OpenVINO bf16 / fp16 where the CPU has them natively) on the
exports of `egtr export`, at 600x1000 (the paper's FPS setting) and 800x1333 (the accuracy setting).
OpenVINO compiles for the input's exact shape, as `egtr predict` does for its first shapes; the
"openvino fp32 dynamic shapes" variant compiles once for any shape instead, as it does after them.
Each variant runs in its own subprocess (`--worker`), so its peak process memory (VmHWM: Python, the
runtime, the weights and the forward together) is its own; it reports the median latency of `--repeats`
timed forwards after `--warmup` untimed ones (torch.compile compiles during the warm-up: its first
call is reported apart), the median process CPU time per forward (steadier than wall time on a shared
machine), and the largest absolute difference of each raw output (class logits, boxes, relation and
connectivity logits) from PyTorch fp32 eager on the same input.

Baseline: `--baseline-src DIR` adds a row for the egtr whose `src` folder is DIR, run as fp32 eager with
only `EGTRConfig`, `EGTR` and `load_state_dict` (which every version has), e.g. today's code before
the fast paths: `git worktree add --detach /tmp/egtr-baseline 54670bf` then
`--baseline-src /tmp/egtr-baseline/src`. Its speed-up column is the reference of all the others.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

SIZES = {"600x1000": (600, 1000), "800x1333": (800, 1333)}
OUTPUTS = ("logits", "pred_boxes", "rel_logits", "connectivity_logits")
# variant -> (runtime, precision, torch.compile)
VARIANTS = {
    "torch fp32 eager": ("torch", "fp32", False),
    "torch bf16 eager": ("torch", "bf16", False),
    "torch fp32 torch.compile": ("torch", "fp32", True),
    "onnxruntime fp32": ("onnxruntime", "fp32", False),
    "openvino fp32": ("openvino", "fp32", False),
    "openvino fp32 dynamic shapes": ("openvino", "fp32", False),
    "openvino bf16": ("openvino", "bf16", False),
    "openvino fp16": ("openvino", "fp16", False),
}
# compiled once for any input shape (static_shapes=0) instead of for the input's exact shape
DYNAMIC_SHAPES = {"openvino fp32 dynamic shapes"}
REFERENCE = "torch fp32 eager"
BASELINE = "baseline fp32 eager"
SRC = Path(__file__).resolve().parents[1] / "src"


# ------------------------------------------------------------------------------------------- worker
def peak_process_memory_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def benchmark_input(height: int, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    pixels = torch.randn(1, 3, height, width, generator=torch.Generator().manual_seed(0))
    return pixels, torch.ones(1, height, width, dtype=torch.bool)


def torch_runner(folder: Path, precision: str, compiled: bool):
    """fp32/bf16 PyTorch forward of the saved weights, with only the API every egtr version has."""
    from safetensors.torch import load_file

    from egtr.config import EGTRConfig
    from egtr.models.egtr import EGTR

    model = EGTR(EGTRConfig.preset((folder / "preset.txt").read_text().strip())).eval()
    model.load_state_dict(load_file(str(folder / "model.safetensors")))
    forward = torch.compile(model) if compiled else model
    dtype = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]

    def run(pixels, mask):
        with torch.inference_mode(), torch.autocast("cpu", dtype=dtype, enabled=dtype is not None):
            output = forward(pixels, mask)
        return {name: getattr(output, name) for name in OUTPUTS}

    return run


def exported_runner(folder: Path, runtime: str, precision: str, dynamic_shapes: bool = False):
    from egtr.export.exporter import load_backend

    if dynamic_shapes:
        from egtr.export.openvino_backend import OpenVinoBackend

        backend = OpenVinoBackend(folder / "export", precision, static_shapes=0)
    else:
        backend = load_backend(runtime, folder / "export", precision)

    def run(pixels, mask):
        raw = backend.run(pixels, mask)
        return {name: getattr(raw, name) for name in OUTPUTS}

    return run


def worker(args: argparse.Namespace) -> None:
    """One variant at one size: prints one JSON line of measurements, saves the outputs."""
    from safetensors.torch import save_file

    if args.threads:
        torch.set_num_threads(args.threads)
    folder = Path(args.folder)
    runtime, precision, compiled = VARIANTS.get(args.worker, ("torch", "fp32", False))
    started = time.perf_counter()
    if runtime == "torch":
        run = torch_runner(folder, precision, compiled)
    else:
        run = exported_runner(folder, runtime, precision, args.worker in DYNAMIC_SHAPES)
    load_seconds = time.perf_counter() - started
    pixels, mask = benchmark_input(*SIZES[args.size])
    started = time.perf_counter()
    outputs = run(pixels, mask)
    first_seconds = time.perf_counter() - started
    for _ in range(args.warmup - 1):
        run(pixels, mask)
    wall, cpu = [], []
    for _ in range(args.repeats):
        wall_start, cpu_start = time.perf_counter(), time.process_time()
        run(pixels, mask)
        wall.append(time.perf_counter() - wall_start)
        cpu.append(time.process_time() - cpu_start)
    tensors = {name: value.float().contiguous() for name, value in outputs.items() if value is not None}
    save_file(tensors, str(folder / f"outputs-{args.size}-{args.worker.replace(' ', '_')}.safetensors"))
    latency = statistics.median(wall)
    print(
        json.dumps(
            {
                "latency_ms": 1000 * latency,
                "cpu_ms": 1000 * statistics.median(cpu),
                "images_per_second": 1 / latency,
                "peak_process_memory_mb": peak_process_memory_mb(),
                "load_seconds": load_seconds,
                "first_call_seconds": first_seconds,
                "threads": torch.get_num_threads(),
            }
        )
    )


# ------------------------------------------------------------------------------------------- driver
def prepare(folder: Path, preset: str, runtimes: set[str]) -> None:
    """Random weights with random frequency statistics as `folder/model.safetensors` (a native checkpoint,
    also a plain state dict for older code), and `folder/export` for the exported `runtimes`."""
    from egtr.checkpoints import save_model
    from egtr.config import EGTRConfig
    from egtr.models.egtr import EGTR

    torch.manual_seed(0)
    model = EGTR(EGTRConfig.preset(preset)).eval()
    config = model.config
    classes = config.num_labels + 1
    model.set_frequency_statistics(torch.randint(0, 6, (classes, classes, config.num_rel_labels)))
    save_model(model, folder / "model.safetensors")
    (folder / "preset.txt").write_text(preset)
    formats = {"onnxruntime": "onnx", "openvino": "openvino"}
    needed = sorted(formats[runtime] for runtime in runtimes if runtime in formats)
    if needed:
        from egtr.export.exporter import export_model

        started = time.perf_counter()
        export_model(model, folder / "export", needed)
        print(f"exported {', '.join(needed)} in {time.perf_counter() - started:.0f} s", file=sys.stderr)


def run_worker(folder: Path, variant: str, size: str, args: argparse.Namespace, src: Path) -> dict:
    command = [sys.executable, __file__, "--worker", variant, "--folder", str(folder), "--size", size]
    command += ["--warmup", str(args.warmup), "--repeats", str(args.repeats)]
    command += ["--threads", str(args.threads)] if args.threads else []
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(src), os.environ.get("PYTHONPATH", "")])}
    try:
        result = subprocess.run(
            command, env=environment, capture_output=True, text=True, timeout=args.timeout
        )
    except subprocess.TimeoutExpired:
        return {"error": f"no result within {args.timeout} s"}
    if result.returncode != 0:
        lines = [line for line in result.stderr.strip().splitlines() if line.strip()]
        return {"error": lines[-1] if lines else f"exit code {result.returncode}"}
    return json.loads(result.stdout.strip().splitlines()[-1])


def differences(folder: Path, size: str, variant: str) -> dict[str, float]:
    from safetensors.torch import load_file

    def outputs(name: str) -> dict:
        return load_file(str(folder / f"outputs-{size}-{name.replace(' ', '_')}.safetensors"))

    reference, candidate = outputs(REFERENCE), outputs(variant)
    return {name: float((candidate[name] - reference[name]).abs().max()) for name in reference}


def table(rows: list[dict]) -> str:
    lines = [
        "| input | variant | latency | CPU time | images/s | speed-up | peak process memory "
        "| max abs diff vs torch fp32 (logits / boxes / rel / conn.) |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for row in rows:
        if "error" in row:
            lines.append(f"| {row['size']} | {row['variant']} | failed: {row['error']} | | | | | |")
            continue
        diff = row.get("max_abs_difference")
        shown = " / ".join(f"{diff[n]:.1e}" for n in OUTPUTS if n in diff) if diff else "reference"
        timing = f"{row['latency_ms'] / 1000:.2f} s | {row['cpu_ms'] / 1000:.2f} s"
        rate = f"{row['images_per_second']:.2f} | {row['speedup']:.2f}x"
        memory = f"{row['peak_process_memory_mb']:.0f} MB"
        lines.append(f"| {row['size']} | {row['variant']} | {timing} | {rate} | {memory} | {shown} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--sizes", nargs="+", default=list(SIZES), choices=list(SIZES), help="(default: both)"
    )
    parser.add_argument(
        "--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS), help="(default: all)"
    )
    parser.add_argument("--baseline-src", type=Path, help="the src folder of another egtr (default: none)")
    parser.add_argument("--preset", default="visual_genome", help="model preset (default: %(default)s)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed forwards (default: %(default)s)")
    parser.add_argument("--repeats", type=int, default=5, help="timed forwards (default: %(default)s)")
    parser.add_argument("--threads", type=int, help="torch threads in every worker (default: torch's)")
    parser.add_argument("--timeout", type=int, default=3600, help="seconds per worker (default: %(default)s)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table (default: off)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    parser.add_argument("--size", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    from egtr.export.openvino_backend import supported_precisions
    from egtr.hardware import describe

    native = supported_precisions()
    variants = [v for v in args.variants if VARIANTS[v][0] != "openvino" or VARIANTS[v][1] in native]
    skipped = sorted(set(args.variants) - set(variants))
    if REFERENCE not in variants:
        variants.insert(0, REFERENCE)
    rows = []
    with tempfile.TemporaryDirectory(prefix="egtr-bench-backends-") as directory:
        folder = Path(directory)
        prepare(folder, args.preset, {VARIANTS[variant][0] for variant in variants})
        for size in args.sizes:
            plan = [(BASELINE, args.baseline_src)] if args.baseline_src else []
            plan += [(variant, SRC) for variant in variants]
            reference_ms, done = None, []
            for variant, src in plan:
                row = {"size": size, "variant": variant, **run_worker(folder, variant, size, args, src)}
                if "error" not in row:
                    reference_ms = reference_ms or row["latency_ms"]  # the first row's: baseline if any
                    row["speedup"] = reference_ms / row["latency_ms"]
                done.append(row)
                print(json.dumps(row), file=sys.stderr, flush=True)
            for row in done:
                if "error" not in row and row["variant"] != REFERENCE:
                    row["max_abs_difference"] = differences(folder, size, row["variant"])
            rows += done
    machine = describe()
    if args.json:
        print(json.dumps({"machine": machine, "preset": args.preset, "rows": rows}, indent=2))
        return
    print(f"{machine}\n{args.preset} preset, batch 1, median of {args.repeats} after {args.warmup} warm-up")
    if skipped:
        print(f"not run (OpenVINO computes {', '.join(native)} natively here): {', '.join(skipped)}")
    print(table(rows))


if __name__ == "__main__":
    main()
