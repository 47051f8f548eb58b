"""The GPU section of BENCHMARKS.md in one command: inference fp32/bf16 (and torch.compile) at the paper's
FPS size and the accuracy size, and one training step at batch 4.

Usage: bash benchmarks/gpu_suite.sh [--device cuda] [--preset visual_genome] [--size 600 1000 --size 800 1333]
           [--precision fp32 bf16] [--compile] [--repeats 20] [--warmup 5] [--training-batch-size 4] [--json]

For every size and precision: `egtr.benchmark.benchmark_model` at batch 1 (median latency, images/s, peak
allocator memory of the forward and of the process), and `egtr.benchmark.benchmark_training_step`
(forward, loss, backward, AdamW) at `--training-batch-size`. Random weights and inputs (speed does not
depend on them). Prints a markdown table beside the paper's 14.7 FPS (V100, data loading included, 600x1000).
`--device cpu` runs the same suite on the CPU (slowly at these sizes; the tests use a tiny preset).
"""

from __future__ import annotations

import argparse
import json
import sys

PRESETS = ("visual_genome", "open_images", "small")
PRECISIONS = ("fp32", "bf16", "fp16")
PAPER_FPS = 14.7  # EGTR paper, 600x1000, batch 1, V100, data loading included


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--device", default="cuda", help="torch device (default: cuda)")
    parser.add_argument("--preset", default="visual_genome", choices=PRESETS)
    parser.add_argument("--config", help="an EGTRConfig JSON file instead of the preset (default: none)")
    parser.add_argument("--size", nargs=2, type=int, action="append", metavar=("H", "W"))
    parser.add_argument("--precision", nargs="+", default=["fp32", "bf16"], choices=PRECISIONS)
    parser.add_argument("--compile", action="store_true", help="also time torch.compile (default: off)")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--training-batch-size", type=int, default=4)
    parser.add_argument("--json", action="store_true")
    return parser.parse_args(argv)


def run_suite(args: argparse.Namespace) -> list[dict]:
    import torch

    from egtr.benchmark import benchmark_model, benchmark_training_step
    from egtr.config import EGTRConfig
    from egtr.models.egtr import EGTR

    config = EGTRConfig.from_file(args.config) if args.config else EGTRConfig.preset(args.preset)
    rows = []
    for height, width in args.size or [(600, 1000), (800, 1333)]:
        for precision in args.precision:
            for compiled in (False, True) if args.compile else (False,):
                torch.manual_seed(0)
                model = EGTR(config)
                result = benchmark_model(
                    model, height, width, 1, args.device, precision, args.warmup, args.repeats, compiled
                )
                row = result.to_dict()
                if not compiled:
                    training = benchmark_training_step(
                        model,
                        height,
                        width,
                        args.training_batch_size,
                        args.device,
                        precision,
                        min(args.warmup, 2),
                        max(1, args.repeats // 4),
                    )
                    row["training_step_ms"] = training.step_ms
                    row["training_peak_memory_mb"] = training.peak_memory_mb
                rows.append(row)
                print(json.dumps(row), file=sys.stderr, flush=True)
                del model
                if torch.device(args.device).type == "cuda":
                    torch.cuda.empty_cache()
    return rows


def markdown(rows: list[dict], args: argparse.Namespace, machine: str) -> str:
    lines = [
        machine,
        f"{args.config or args.preset}, batch 1 (training: batch {args.training_batch_size}), "
        f"median of {args.repeats} after {args.warmup} warm-up, random weights and inputs\n",
        "| input | precision | latency | images/s | peak memory (forward / process) | training step |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for row in rows:
        precision = row["precision"] + (" + torch.compile" if row["compiled"] else "")
        training = f"{row['training_step_ms']:.0f} ms" if "training_step_ms" in row else "-"
        lines.append(
            f"| {row['height']}x{row['width']} | {precision} | {row['latency_ms']:.1f} ms "
            f"| {row['images_per_second']:.1f} | {row['peak_memory_mb']:.0f} / "
            f"{row['peak_process_memory_mb']:.0f} MB | {training} |"
        )
    lines.append(f"\nPaper: {PAPER_FPS} FPS at 600x1000 (V100, batch 1, data loading included).")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_arguments(argv)
    import torch

    from egtr.hardware import describe

    if torch.device(args.device).type == "cuda" and not torch.cuda.is_available():
        print("gpu_suite: CUDA is not available here (use --device cpu to try the suite)", file=sys.stderr)
        return 2
    rows = run_suite(args)
    machine = describe(args.device)
    report = {"machine": machine, "rows": rows}
    print(json.dumps(report, indent=2) if args.json else markdown(rows, args, machine))
    return 0


if __name__ == "__main__":
    sys.exit(main())
