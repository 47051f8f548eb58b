"""`egtr benchmark`: the fixed speed/memory protocol of egtr.benchmark."""

from __future__ import annotations

import argparse
import json
import sys

from egtr.cli.errors import CommandError
from egtr.cli.options import (
    add_device_argument,
    add_model_arguments,
    add_precision_argument,
    add_threads_argument,
    model_from_args,
    set_threads,
)


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
        default=[600, 1000],
        metavar=("H", "W"),
        help="input height and width (default: 600 1000, the paper's FPS setting)",
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
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:

    from egtr.benchmark import benchmark_model, benchmark_training_step
    from egtr.devices import resolve_device
    from egtr.hardware import describe

    set_threads(args)
    height, width = args.size
    if min(height, width, args.batch_size, args.repeats, args.training_batch_size) < 1:
        raise CommandError("--size, --batch-size, --training-batch-size and --repeats must be positive")
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
