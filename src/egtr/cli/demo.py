"""`egtr demo`: the whole method on the synthetic world, end to end, on a CPU (BENCHMARKS.md has its time)."""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

from egtr.cli.errors import CommandError
from egtr.cli.options import DEMO_OUT, add_device_argument

DEFAULT_OUT = DEMO_OUT
DETECTOR_STEPS = 1000
EGTR_STEPS = 500
# an easy world for a short CPU run: larger shapes (1/5 to 0.45 of the side), at most 5 per image
OBJECT_SIZE = (0.2, 0.45)
MAX_OBJECTS = 5
VALIDATIONS_PER_PHASE = 2
DRAWN_IMAGES = 6


def add_parser(subparsers, parents) -> None:
    parser = subparsers.add_parser(
        "demo",
        parents=parents,
        help="train and evaluate EGTR on the synthetic world (the main job)",
        description="Generate the synthetic scene-graph world, train the small config (detector, then EGTR), "
        "evaluate on held-out images (AP50, R@K, mR@K), predict a few images and write a report folder. "
        "The defaults take minutes on a CPU (the README and BENCHMARKS.md give the times measured, with "
        "their machines) and are reproducible on one machine (same seed, same metrics).",
    )
    parser.add_argument("--out", default=str(DEFAULT_OUT), help=f"report folder (default: {DEFAULT_OUT})")
    parser.add_argument(
        "--images",
        type=int,
        default=1200,
        help="synthetic images generated: 80%% train, 10%% val, 10%% test (default: 1200)",
    )
    parser.add_argument("--size", type=int, default=128, help="synthetic image side in pixels (default: 128)")
    parser.add_argument(
        "--detector-steps",
        type=int,
        default=DETECTOR_STEPS,
        help=f"detector pre-training steps (default: {DETECTOR_STEPS})",
    )
    parser.add_argument(
        "--egtr-steps", type=int, default=EGTR_STEPS, help=f"EGTR training steps (default: {EGTR_STEPS})"
    )
    parser.add_argument(
        "--minutes",
        type=float,
        help="train for this many minutes instead of a fixed number of steps, split 60/40 between "
        "the phases (not bit-reproducible: depends on the machine's speed) (default: off)",
    )
    add_device_argument(parser, training=True, default="cpu")
    parser.add_argument("--batch-size", type=int, default=4, help="images per step (default: 4)")
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


def phase_overrides(args: argparse.Namespace) -> dict[str, dict]:
    budgets = {"detector": (args.detector_steps, 0.6), "egtr": (args.egtr_steps, 0.4)}
    overrides = {}
    for phase, (steps, share) in budgets.items():
        if args.minutes:
            overrides[phase] = {
                "max_minutes": args.minutes * share,
                "max_steps": -1,
                "val_check_interval": 100,
            }
        else:
            overrides[phase] = {
                "max_steps": steps,
                "val_check_interval": max(1, steps // VALIDATIONS_PER_PHASE),
            }
    return overrides


def recipe_overrides(args: argparse.Namespace, data: Path) -> dict:
    """Settings of both phases, on top of the `synthetic` presets, for the world written to `data`."""
    return {
        "data": str(data),
        "seed": args.seed,
        "accelerator": args.device,
        "batch_size": args.batch_size,
        "num_workers": args.workers,
        "eval_size": args.size,
        "eval_max_size": 2 * args.size,
        "train_scales": [round(args.size * f) for f in (0.9, 1.0, 1.1)],
        "train_max_size": 2 * args.size,
    }


def write_world(args: argparse.Namespace, data: Path) -> None:
    """The demo's synthetic world (easy: large shapes, few per image) as a dataset directory."""
    from egtr.data.synthetic.export import write_synthetic_dataset

    write_synthetic_dataset(
        data,
        args.images,
        seed=args.seed,
        image_size=(args.size, args.size),
        object_size=OBJECT_SIZE,
        max_objects=MAX_OBJECTS,
    )


def run(args: argparse.Namespace) -> int:
    from egtr.engine.run import run_recipe

    if args.images < 30:
        raise CommandError("--images must be at least 30 (the test split gets 10%)")
    out = Path(args.out)
    if args.fresh and out.exists():
        shutil.rmtree(out)
    started = time.perf_counter()
    data = out / "data"
    if not (data / "rel.json").is_file():
        print(f"generating {args.images} synthetic images ({args.size}x{args.size}) into {data}")
        write_world(args, data)
    results = run_recipe(
        "synthetic",
        ["detector", "egtr"],
        str(out / "train"),
        recipe_overrides(args, data),
        phase_overrides(args),
    )
    final = results[-1]
    report = out / "report"
    report.mkdir(parents=True, exist_ok=True)
    for phase_result in results:
        curves = phase_result.out / "report" / "loss_curves.png"
        if curves.is_file():
            shutil.copy(curves, report / f"loss_curves_{phase_result.out.name}.png")
    for name in ("metrics.json", "metrics.md"):
        shutil.copy(final.out / "report" / name, report / name)
    shutil.copy(final.model_path, out / "model.safetensors")
    draw_predictions(out / "model.safetensors", data, report / "predictions", args.device)
    minutes = (time.perf_counter() - started) / 60
    headline = {
        key: final.metrics.get(key) for key in ("AP50", "R@20", "R@50", "R@100", "mR@20", "mR@50", "mR@100")
    }
    if args.json:
        print(json.dumps({**headline, "minutes": round(minutes, 2), "report": str(report)}, indent=2))
    else:
        print(f"\nheld-out synthetic test set, {minutes:.1f} minutes in all:")
        for key, value in headline.items():
            print(f"  {key:7s} {value:.4f}" if isinstance(value, float) else f"  {key:7s} {value}")
        print(f"report: {report}  model: {out / 'model.safetensors'}")
    return 0


def draw_predictions(model_path: Path, data: Path, out: Path, device: str) -> None:
    """Scene graphs of the first test images as JSON and drawings (photo with boxes, graph beside it)."""
    from egtr.data import load_dataset
    from egtr.files import write_text
    from egtr.inference.predictor import SceneGraphPredictor
    from egtr.inference.visualize import draw_scene_graph

    records = load_dataset(data, "test").records[:DRAWN_IMAGES]
    size = max(records[0].width, records[0].height)
    predictor = SceneGraphPredictor.from_checkpoint(
        model_path,
        device=None if device == "auto" else device,
        size=size,
        max_size=2 * size,
        top_k=20,
        dedup_iou=0.7,  # merge near-identical boxes of one class for a readable drawing
    )
    for result in predictor.iter_predict([record.image_path for record in records]):
        if result.graph is None:
            continue
        stem = Path(result.source).stem
        write_text(out / f"{stem}.json", result.graph.to_json())
        draw_scene_graph(result.image, result.graph, out / f"{stem}.png", max_edges=6)
