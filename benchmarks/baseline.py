"""Today's code against an older commit, in one run on one machine: latency, CPU time, memory, outputs.

Usage: python benchmarks/baseline.py [--ref 54670bf] [--size 600 1000 --size 800 1333] [--repeats 3]
           [--warmup 1] [--precision fp32 [bf16 ...]] [--compile] [--threads N] [--json]

The older commit is checked out into a temporary `git worktree` (removed afterwards) and imported from
there in a subprocess; this tree's code runs the same script (`time_forward.py`) in its own subprocess.
Both load the same random weights and the same random input, so besides speed the table shows the largest
absolute difference of the raw outputs (class logits, boxes, relation and connectivity logits, attention
queries) from the old commit's fp32 outputs. Rows: the old commit (fp32 eager), this tree in every
`--precision`, and with `--compile` this tree's fp32 under torch.compile. Peak memory is the whole process
(VmHWM), one process per row.

Reuse (e.g. a backends benchmark): `checkout(ref)` gives the old commit's `src` directory,
`write_model_and_input(folder, preset, height, width)` the shared weights/input files, and
`time_forward(src, weights, inputs, ...)` one row's measurements.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
TIMER = Path(__file__).resolve().with_name("time_forward.py")
DEFAULT_REF = "54670bf"  # egtr before the fast path: per-level grid_sample attention, unfused backbone


@contextlib.contextmanager
def checkout(ref: str) -> Iterator[Path]:
    """A temporary detached worktree of `ref`; yields its `src` directory and removes it afterwards."""
    with tempfile.TemporaryDirectory(prefix="egtr-baseline-") as folder:
        tree = Path(folder) / "tree"
        subprocess.run(
            ["git", "-C", str(REPO), "worktree", "add", "--detach", "--quiet", str(tree), ref], check=True
        )
        try:
            yield tree / "src"
        finally:
            subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(tree)], check=True)


def write_model_and_input(
    folder: Path, preset: str, height: int, width: int, seed: int = 0
) -> tuple[Path, Path]:
    """Random weights of `preset` and one random input image, saved for `time_forward.py`."""
    from egtr.config import EGTRConfig
    from egtr.models.egtr import EGTR

    torch.manual_seed(seed)
    weights, inputs = folder / f"weights-{preset}.pt", folder / f"input-{height}x{width}.pt"
    if not weights.is_file():
        torch.save({"preset": preset, "state": EGTR(EGTRConfig.preset(preset)).state_dict()}, weights)
    pixels = torch.randn(1, 3, height, width, generator=torch.Generator().manual_seed(seed))
    torch.save({"pixel_values": pixels, "pixel_mask": torch.ones(1, height, width, dtype=torch.bool)}, inputs)
    return weights, inputs


def time_forward(
    src: Path,
    weights: Path,
    inputs: Path,
    outputs: Path | None = None,
    precision: str = "fp32",
    compile: bool = False,
    warmup: int = 1,
    repeats: int = 3,
    threads: int | None = None,
) -> dict:
    """Run `time_forward.py` with `src` first on PYTHONPATH; returns its JSON result."""
    command = [sys.executable, str(TIMER), "--weights", str(weights), "--inputs", str(inputs)]
    command += ["--precision", precision, "--warmup", str(warmup), "--repeats", str(repeats)]
    command += ["--outputs", str(outputs)] if outputs else []
    command += ["--compile"] if compile else []
    command += ["--threads", str(threads)] if threads else []
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(src), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run(command, env=environment, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"time_forward.py failed with {src}:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def max_differences(reference: Path, candidate: Path) -> dict[str, float]:
    """Largest absolute difference per output field between two saved output files."""
    expected, got = torch.load(reference, weights_only=True), torch.load(candidate, weights_only=True)
    return {key: (got[key] - expected[key]).abs().max().item() for key in expected}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--ref", default=DEFAULT_REF, help=f"older commit (default: {DEFAULT_REF})")
    parser.add_argument("--preset", default="visual_genome")
    parser.add_argument("--size", nargs=2, type=int, action="append", metavar=("H", "W"))
    parser.add_argument("--precision", nargs="+", default=["fp32"], choices=("fp32", "bf16", "fp16"))
    parser.add_argument("--compile", action="store_true", help="add a torch.compile fp32 row")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    from egtr.hardware import describe

    timing = {"warmup": args.warmup, "repeats": args.repeats, "threads": args.threads}
    rows = []
    with checkout(args.ref) as old_src, tempfile.TemporaryDirectory(prefix="egtr-bench-") as folder:
        folder = Path(folder)
        for height, width in args.size or [(600, 1000), (800, 1333)]:
            weights, inputs = write_model_and_input(folder, args.preset, height, width)
            reference = folder / "reference.pt"
            variants = [(f"egtr {args.ref} fp32 eager", old_src, "fp32", False)]
            variants += [(f"this tree {p} eager", REPO / "src", p, False) for p in args.precision]
            if args.compile:
                variants.append(("this tree fp32 torch.compile", REPO / "src", "fp32", True))
            for name, src, precision, compiled in variants:
                outputs = folder / "outputs.pt"
                row = time_forward(src, weights, inputs, outputs, precision, compiled, **timing)
                if src == old_src:
                    outputs.replace(reference)
                    baseline = row
                else:
                    row["max_abs_difference"] = max_differences(reference, outputs)
                row.update(
                    name=name, size=f"{height}x{width}", speedup=baseline["latency_ms"] / row["latency_ms"]
                )
                row["cpu_speedup"] = baseline["cpu_ms"] / row["cpu_ms"]
                rows.append(row)
                print(json.dumps(row), file=sys.stderr)
    if args.json:
        print(json.dumps({"machine": describe(), "preset": args.preset, "rows": rows}, indent=2))
        return
    print(f"{describe()}\n{args.preset}, batch 1, median of {args.repeats} after {args.warmup} warm-up\n")
    print("| input | code | latency | CPU time | images/s | speed-up | peak process memory | max abs diff |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        difference = max(row.get("max_abs_difference", {"": 0.0}).values())
        latency, cpu, memory = row["latency_ms"] / 1000, row["cpu_ms"] / 1000, row["peak_process_memory_mb"]
        print(
            f"| {row['size']} | {row['name']} | {latency:.2f} s | {cpu:.2f} s "
            f"| {row['images_per_second']:.3f} | {row['speedup']:.2f}x | {memory:.0f} MB | {difference:.1e} |"
        )


if __name__ == "__main__":
    main()
