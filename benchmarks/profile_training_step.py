"""One training step of `egtr demo`, part by part: data, forward, loss, backward, optimizer.

Usage: python benchmarks/profile_training_step.py [--ref 54670bf] [--steps 20] [--warmup 3]
           [--phase detector egtr] [--threads N] [--json] [demo options, e.g. --size 128 --batch-size 4]

The demo's world (`egtr demo`'s options; 200 images are enough here) is written to a temporary folder and
each phase's training settings are built as the demo builds them. Every code version runs in its own
subprocess (this tree, and with `--ref` an older commit from a temporary git worktree): the engine's data
module and Lightning module, without a Trainer, step by step as Lightning steps them (fetch a batch;
forward; loss; backward; gradient clipping + AdamW step + zero_grad). Reported per part: median wall time
and median process CPU time (steadier on a shared machine); and the first steps' losses, which must agree
between versions (same seed, same data, same fp32 numbers up to rounding).
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

HERE = Path(__file__).resolve()
REPO = HERE.parents[1]
PARTS = ("data", "forward", "loss", "backward", "optimizer")


def worker(spec: dict) -> dict:
    """Run in the subprocess: time `spec["steps"]` steps of each phase with the importable egtr."""
    import lightning as L

    from egtr.engine.datamodule import SceneGraphDataModule
    from egtr.engine.module import EGTRModule
    from egtr.engine.run import initialize, model_config
    from egtr.engine.settings import merge, preset

    if spec["threads"]:
        torch.set_num_threads(spec["threads"])
    results = {}
    for phase in spec["phases"]:
        settings = merge(preset("synthetic", phase), {**spec["overrides"], **spec["phase_overrides"][phase]})
        L.seed_everything(settings.seed, workers=True, verbose=False)
        data = SceneGraphDataModule(settings)
        config, source = model_config(settings, data)
        module = EGTRModule(config, settings)
        initialize(module, source, settings, data)
        module.train()
        optimizer = module.configure_optimizers()
        parameters = [p for group in optimizer.param_groups for p in group["params"]]
        batches = iter(data.train_dataloader())
        wall = {part: [] for part in PARTS}
        cpu = {part: [] for part in PARTS}
        losses = []
        for step in range(spec["warmup"] + spec["steps"]):
            clock = [(time.perf_counter(), time.process_time())]
            lap = lambda clock=clock: clock.append((time.perf_counter(), time.process_time()))  # noqa: E731
            batch = next(batches)
            lap()
            outputs = module(batch["pixel_values"], batch["pixel_mask"])
            lap()
            loss = module.criterion(outputs, batch["targets"])["loss"]
            lap()
            loss.backward()
            lap()
            torch.nn.utils.clip_grad_norm_(parameters, settings.gradient_clip)
            optimizer.step()
            optimizer.zero_grad()
            lap()
            losses.append(loss.item())
            if step >= spec["warmup"]:
                for index, part in enumerate(PARTS):
                    wall[part].append((clock[index + 1][0] - clock[index][0]) * 1000)
                    cpu[part].append((clock[index + 1][1] - clock[index][1]) * 1000)
        results[phase] = {
            "wall_ms": {part: statistics.median(times) for part, times in wall.items()},
            "cpu_ms": {part: statistics.median(times) for part, times in cpu.items()},
            "losses": losses,
        }
    return results


def run_version(src: Path, spec: dict, folder: Path) -> dict:
    spec_path = folder / "spec.json"
    spec_path.write_text(json.dumps(spec))
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join([str(src), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run(
        [sys.executable, str(HERE), "--worker", str(spec_path)],
        env=environment,
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise RuntimeError(f"worker failed with {src}:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--worker":
        print(json.dumps(worker(json.loads(Path(sys.argv[2]).read_text()))))
        return
    from egtr.cli import build_parser
    from egtr.cli.demo import phase_overrides, recipe_overrides, write_world
    from egtr.hardware import describe

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--ref", help="also time this older commit (e.g. 54670bf)")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--phase", nargs="+", default=["detector", "egtr"], choices=("detector", "egtr"))
    parser.add_argument("--threads", type=int)
    parser.add_argument("--json", action="store_true")
    args, demo_arguments = parser.parse_known_args()
    demo = build_parser().parse_args(["demo", "--images", "200", *demo_arguments])
    sys.path.insert(0, str(HERE.parent))
    from baseline import checkout

    rows = {}
    with tempfile.TemporaryDirectory(prefix="egtr-step-") as folder:
        folder = Path(folder)
        write_world(demo, folder / "data")
        spec = {
            "overrides": recipe_overrides(demo, folder / "data"),
            "phase_overrides": phase_overrides(demo),
            "phases": args.phase,
            "steps": args.steps,
            "warmup": args.warmup,
            "threads": args.threads,
        }
        if args.ref:
            with checkout(args.ref) as old_src:
                rows[f"egtr {args.ref}"] = run_version(old_src, spec, folder)
        rows["this tree"] = run_version(REPO / "src", spec, folder)
    if args.json:
        print(json.dumps({"machine": describe(), "spec": spec, "rows": rows}, indent=2))
        return
    print(f"{describe()}\ndemo step: batch {demo.batch_size}, {demo.size}px, median of {args.steps}\n")
    print("| phase | code | " + " | ".join(PARTS) + " | step (wall) | step (CPU) |")
    print("|---|---|" + "---:|" * (len(PARTS) + 2))
    for name, phases in rows.items():
        for phase, result in phases.items():
            cells = [f"{result['wall_ms'][part]:.0f} ms" for part in PARTS]
            wall, cpu = sum(result["wall_ms"].values()), sum(result["cpu_ms"].values())
            print(f"| {phase} | {name} | " + " | ".join(cells) + f" | {wall:.0f} ms | {cpu:.0f} ms |")
    for phase in args.phase:
        losses = {name: phases[phase]["losses"][:5] for name, phases in rows.items()}
        print(
            f"\nfirst losses, {phase}: "
            + "; ".join(f"{n}: {[round(v, 6) for v in l]}" for n, l in losses.items())
        )


if __name__ == "__main__":
    main()
