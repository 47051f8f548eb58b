"""`egtr benchmark`: the fixed speed/memory protocol of egtr.benchmark."""

from __future__ import annotations

import argparse
import json

from egtr.cli.errors import CommandError
from egtr.cli.model_options import add_model_arguments, model_from_args


def add_parser(subparsers, parents) -> None:
    parser = subparsers.add_parser(
        "benchmark",
        parents=parents,
        help="latency, images/s and peak memory of a model",
        description="Time the model's forward pass with a fixed protocol (warm-up, median of repeats) on "
        "random input, and report parameters, latency, images/s, peak memory and the relation head's share.",
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
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default: auto)")
    parser.add_argument(
        "--dtype",
        default="float32",
        choices=["float32", "float16", "bfloat16"],
        help="autocast dtype (default: float32)",
    )
    parser.add_argument("--warmup", type=int, default=2, help="untimed passes first (default: 2)")
    parser.add_argument(
        "--repeats", type=int, default=5, help="timed passes; the median is reported (default: 5)"
    )
    parser.add_argument("--threads", type=int, help="CPU threads (default: torch's choice)")
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON (default: off)")
    parser.set_defaults(func=run)


def resolve_device(name: str) -> str:
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise CommandError(f"--device {name}: CUDA is not available on this machine")
    return name


def run(args: argparse.Namespace) -> int:
    import torch

    from egtr.benchmark import benchmark_model

    if args.threads:
        torch.set_num_threads(args.threads)
    height, width = args.size
    if min(height, width, args.batch_size, args.repeats) < 1:
        raise CommandError("--size, --batch-size and --repeats must be positive")
    result = benchmark_model(
        model_from_args(args),
        height,
        width,
        args.batch_size,
        resolve_device(args.device),
        args.dtype,
        args.warmup,
        args.repeats,
    )
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
        return 0
    print(
        f"device {result.device} ({result.threads} threads), dtype {result.dtype}, "
        f"batch {result.batch_size}, input {result.height}x{result.width}, "
        f"median of {result.repeats} after {result.warmup} warm-up"
    )
    print(f"parameters       {result.parameters:,}")
    print(f"latency          {result.latency_ms:.1f} ms")
    print(f"throughput       {result.images_per_second:.2f} images/s")
    print(f"peak memory      {result.peak_memory_mb:.0f} MB")
    share = 100 * result.relation_head_share
    print(f"relation head    {result.relation_head_ms:.1f} ms ({share:.1f}% of the forward)")
    return 0
