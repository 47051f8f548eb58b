"""`egtr benchmark`: the fixed speed/memory protocol of egtr.benchmark, or with --backend the table of every
backend and precision this machine runs natively (egtr.export.backend_table)."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path

from egtr.cli.datasets import add_split_argument
from egtr.cli.errors import CommandError
from egtr.cli.options import (
    add_device_argument,
    add_model_arguments,
    add_precision_argument,
    add_threads_argument,
    model_from_args,
    set_threads,
)
from egtr.export.backend_table import CALIBRATION_SIZE
from egtr.export.formats import BACKENDS
from egtr.sizes import EVAL_MAX_SIZE, EVAL_SIZE

DEFAULT_SIZE = (600, 1000)  # the paper's FPS setting


def add_parser(subparsers, parents) -> None:
    parser = subparsers.add_parser(
        "benchmark",
        parents=parents,
        help="latency, images/s and peak memory of a model",
        description="Time the model's forward pass with a fixed protocol (warm-up, median of repeats) on "
        "random input, and report parameters, latency, images/s, peak memory and the relation head's share; "
        "optionally also one training step.",
    )
    add_model_arguments(parser)
    parser.add_argument(
        "--size",
        nargs=2,
        type=int,
        action="append",
        metavar=("H", "W"),
        help="input height and width; with --backend, repeat it for more sizes (default: 600 1000, the "
        "paper's FPS setting)",
    )
    parser.add_argument("--batch-size", type=int, default=1, help="images per forward pass (default: 1)")
    add_device_argument(parser)
    add_precision_argument(parser, exports=False)
    parser.add_argument(
        "--compile", action="store_true", help="run the forward through torch.compile (default: off)"
    )
    parser.add_argument("--warmup", type=int, default=2, help="untimed passes first (default: 2)")
    parser.add_argument(
        "--repeats", type=int, default=5, help="timed passes; the median is reported (default: 5)"
    )
    parser.add_argument(
        "--training-step",
        action="store_true",
        help="also time one training step (forward, loss on random targets, backward, AdamW) at "
        "--training-batch-size, same size and precision (default: off)",
    )
    parser.add_argument(
        "--training-batch-size", type=int, default=4, help="images per training step (default: 4)"
    )
    add_threads_argument(parser)
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON (default: off)")
    table = parser.add_argument_group(
        "every backend (--backend): each variant at each --size in a fresh process of its own"
    )
    table.add_argument(
        "--backend",
        choices=(*BACKENDS, "all"),
        help="measure this backend (all: every one) in each precision this machine computes natively, "
        "and its INT8 export where the CPU has int8 dot products: latency, CPU time, peak process memory, "
        "difference from PyTorch fp32, and with --data the accuracy; exports are made from the model in "
        "a temporary folder (default: none, the single-model protocol above)",
    )
    table.add_argument(
        "--data",
        metavar="DIR",
        type=Path,
        help="also evaluate every variant on this dataset through `egtr evaluate --backend ...` (R@50, "
        "mR@50, AP50) (default: none)",
    )
    add_split_argument(table, "evaluate")
    table.add_argument(
        "--eval-size",
        type=int,
        metavar="N",
        default=EVAL_SIZE,
        help="shorter image side of the evaluation and of the INT8 calibration (default: %(default)s)",
    )
    table.add_argument(
        "--eval-max-size",
        type=int,
        metavar="N",
        default=EVAL_MAX_SIZE,
        help="longest side cap of the evaluation and calibration (default: %(default)s)",
    )
    table.add_argument(
        "--calibration",
        metavar="DATA_OR_IMAGES",
        help="images that calibrate the INT8 exports, as `egtr export --calibration` (default: --data, "
        "else generated noise images, which serve a speed measurement only)",
    )
    table.add_argument(
        "--calibration-size",
        type=int,
        metavar="N",
        default=CALIBRATION_SIZE,
        help="calibration images (default: %(default)s)",
    )
    table.add_argument(
        "--exports",
        nargs="+",
        metavar="DIR",
        type=Path,
        default=[],
        help="`egtr export` folders whose files are measured instead of exports made on the fly (fp32 "
        "and INT8 told apart by their metadata) (default: none)",
    )
    table.add_argument(
        "--timeout", type=float, default=3600, help="seconds per process (default: %(default)s)"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:

    from egtr.benchmark import benchmark_model, benchmark_training_step
    from egtr.devices import resolve_device
    from egtr.hardware import describe

    set_threads(args)
    sizes = [tuple(size) for size in args.size or [DEFAULT_SIZE]]
    if min(*(min(size) for size in sizes), args.batch_size, args.repeats, args.training_batch_size) < 1:
        raise CommandError("--size, --batch-size, --training-batch-size and --repeats must be positive")
    if args.backend:
        return run_table(args, sizes)
    if len(sizes) > 1:
        raise CommandError("several --size need --backend (the table); the single-model protocol takes one")
    height, width = sizes[0]
    device = str(resolve_device(args.device))
    model = model_from_args(args)
    result = benchmark_model(
        model, height, width, args.batch_size, device, args.precision, args.warmup, args.repeats, args.compile
    )
    training = None
    if args.training_step:
        training = benchmark_training_step(
            model,
            height,
            width,
            args.training_batch_size,
            device,
            args.precision,
            min(args.warmup, 1),
            args.repeats,
        )
    if result.note:
        print(f"note: {result.note}", file=sys.stderr)
    if args.json:
        report = {**result.to_dict(), "machine": describe(device)}
        if training is not None:
            report["training_step"] = training.to_dict()
        print(json.dumps(report, indent=2))
        return 0
    compiled = ", torch.compile" if result.compiled else ""
    print(describe(device))
    print(
        f"device {result.device}, precision {result.precision}{compiled}, batch {result.batch_size}, "
        f"input {result.height}x{result.width}, median of {result.repeats} after {result.warmup} warm-up"
    )
    print(f"parameters       {result.parameters:,}")
    print(f"latency          {result.latency_ms:.1f} ms")
    print(f"throughput       {result.images_per_second:.2f} images/s")
    print(f"peak memory      {result.peak_memory_mb:.0f} MB added by a forward pass")
    print(f"process peak     {result.peak_process_memory_mb:.0f} MB")
    share = 100 * result.relation_head_share
    print(f"relation head    {result.relation_head_ms:.1f} ms ({share:.1f}% of the forward)")
    if training is not None:
        print(
            f"training step    {training.step_ms:.1f} ms at batch {training.batch_size} "
            f"({training.peak_memory_mb:.0f} MB added)"
        )
    return 0


def run_table(args: argparse.Namespace, sizes: list[tuple[int, int]]) -> int:
    """--backend: the table of egtr.export.backend_table."""
    from egtr.export.backend_table import backend_table, native_variants, table
    from egtr.hardware import describe

    fixed = {
        "--precision": args.precision != "fp32",
        "--compile": args.compile,
        "--batch-size": args.batch_size != 1,
        "--training-step": args.training_step,
        "--device": args.device not in ("auto", "cpu"),
    }
    clashing = [flag for flag, given in fixed.items() if given]
    if clashing:
        raise CommandError(
            f"--backend measures every native precision at batch 1 on the CPU: drop {', '.join(clashing)}"
        )
    if args.warmup < 0 or args.calibration_size < 1:
        raise CommandError("--warmup must be >= 0 and --calibration-size >= 1")
    variants, skipped = native_variants(BACKENDS if args.backend == "all" else (args.backend,))
    model = model_from_args(args)
    checkpoint = Path(args.checkpoint) if args.checkpoint and not args.backbone_weights else None
    with contextlib.redirect_stdout(sys.stderr):  # the quantizers' progress bars: stdout keeps the table
        rows = backend_table(
            model,
            checkpoint,
            variants,
            sizes,
            warmup=args.warmup,
            repeats=args.repeats,
            threads=args.threads,
            data=args.data,
            split=args.split,
            eval_size=args.eval_size,
            eval_max_size=args.eval_max_size,
            calibration=args.calibration,
            calibration_size=args.calibration_size,
            exports=args.exports,
            timeout=args.timeout,
            progress=lambda text: print(text, file=sys.stderr, flush=True),
        )
    machine = describe()
    if args.json:
        print(json.dumps({"machine": machine, "skipped": skipped, "rows": rows}, indent=2))
        return 0
    print(machine)
    model_name = args.checkpoint or args.config or f"{args.preset} preset"
    print(f"{model_name}, batch 1, median of {args.repeats} after the first call and {args.warmup} more")
    if skipped:
        print(f"not run: {'; '.join(skipped)}")
    print(table(rows))
    failed = any("error" in r for row in rows for r in [*row["sizes"].values(), row["accuracy"] or {}])
    return 1 if failed else 0
