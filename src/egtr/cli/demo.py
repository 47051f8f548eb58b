"""`egtr demo`: the whole method on the synthetic world, end to end, on a CPU."""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

from egtr.cli.errors import CommandError
from egtr.cli.options import DEMO_OUT, add_device_argument
from egtr.data.synthetic.demo_world import DEFAULT_IMAGES, IMAGE_SIZE
from egtr.engine.demo import DEMO_BATCH_SIZE, DEMO_STEPS

DEFAULT_OUT = DEMO_OUT
HEADLINE = ("AP50", "R@20", "R@50", "R@100", "mR@20", "mR@50", "mR@100")


def add_parser(subparsers, parents) -> None:
    parser = subparsers.add_parser(
        "demo",
        parents=parents,
        help="train and evaluate EGTR on the synthetic world (the main job)",
        description="Generate the synthetic scene-graph world, train EGTR on it from scratch (detector and "
        "relation head together, in one phase), evaluate on held-out images (AP50, R@K, mR@K), draw the "
        "scene graphs of a few of them beside their ground truth, and write a report folder with the "
        "learning curve. The defaults are a fixed number of steps, reproducible on one machine (same seed, "
        "same metrics); README.md says how long they take on which machines.",
    )
    parser.add_argument("--out", default=str(DEFAULT_OUT), help=f"report folder (default: {DEFAULT_OUT})")
    parser.add_argument(
        "--images",
        type=int,
        default=DEFAULT_IMAGES,
        help=f"synthetic images generated: 80%% train, 10%% val, 10%% test (default: {DEFAULT_IMAGES})",
    )
    parser.add_argument(
        "--size", type=int, default=IMAGE_SIZE, help=f"synthetic image side in pixels (default: {IMAGE_SIZE})"
    )
    parser.add_argument(
        "--steps", type=int, default=DEMO_STEPS, help=f"training steps (default: {DEMO_STEPS})"
    )
    parser.add_argument(
        "--minutes",
        type=float,
        help="train for this many minutes instead of --steps, the learning-rate schedule spread over the "
        "time (not bit-reproducible: depends on the machine's speed) (default: off)",
    )
    add_device_argument(parser, training=True, default="cpu")
    parser.add_argument(
        "--batch-size",
        type=int,
        default=DEMO_BATCH_SIZE,
        help=f"images per step (default: {DEMO_BATCH_SIZE})",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=0,
        help="data loader worker processes; 0 loads in the training process, best on 2 cores (default: 0)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the world and of training (default: 0)")
    parser.add_argument(
        "--fresh",
        action="store_true",
        help="delete OUT first instead of resuming an interrupted demo (default: resume)",
    )
    parser.add_argument("--json", action="store_true", help="print the final metrics as JSON (default: off)")
    parser.set_defaults(func=run)


def write_world(args: argparse.Namespace, data: Path) -> None:
    """The demo's synthetic world (egtr.data.synthetic.demo_world) as a dataset directory."""
    from egtr.data.synthetic.demo_world import write_demo_world

    write_demo_world(data, args.images, seed=args.seed, image_size=args.size)


def demo_training(args: argparse.Namespace, data: Path):
    """The training settings of the demo run (egtr.engine.demo) for these options and world."""
    from egtr.engine.demo import demo_settings

    return demo_settings(
        data,
        Path(args.out) / "train",
        image_size=args.size,
        seed=args.seed,
        steps=args.steps,
        minutes=args.minutes,
        batch_size=args.batch_size,
        accelerator=args.device,
        workers=args.workers,
    )


def run(args: argparse.Namespace) -> int:
    from egtr.data.synthetic.demo_world import demo_world_exists
    from egtr.engine.demo import write_demo_report
    from egtr.engine.run import run_phase

    if args.images < 30:
        raise CommandError("--images must be at least 30 (the test split gets 10%)")
    if args.steps < 1 or args.batch_size < 1 or (args.minutes is not None and args.minutes <= 0):
        raise CommandError("--steps, --batch-size and --minutes must be positive")
    out = Path(args.out)
    if args.fresh and out.exists():
        shutil.rmtree(out)
    started = time.perf_counter()
    data = out / "data"
    if not demo_world_exists(data):
        print(f"generating {args.images} synthetic images ({args.size}x{args.size}) into {data}")
        write_world(args, data)
    result = run_phase(demo_training(args, data))
    shutil.copy(result.model_path, out / "model.safetensors")
    report = write_demo_report(result, data, out / "model.safetensors", out / "report", args.device)
    minutes = (time.perf_counter() - started) / 60
    headline = {key: result.metrics.get(key) for key in HEADLINE}
    if args.json:
        print(json.dumps({**headline, "minutes": round(minutes, 2), "report": str(report)}, indent=2))
    else:
        print(f"\nheld-out synthetic test set, {minutes:.1f} minutes in all:")
        for key, value in headline.items():
            print(f"  {key:7s} {value:.4f}" if isinstance(value, float) else f"  {key:7s} {value}")
        print(f"report: {report}  model: {out / 'model.safetensors'}")
    return 0
