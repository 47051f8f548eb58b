"""Where a training step of `egtr demo` goes: data, forward, matcher, loss, backward, clipping, optimizer,
Lightning's own share, and the arithmetic (FLOPs, convolutions, matrix products) against everything else.

Usage: python benchmarks/profile_training_step.py [--ref d24c227] [--steps 20] [--warmup 3] [--threads N]
           [--no-trainer] [--json] [demo options, e.g. --batch-size 8]

The demo's world (`egtr demo`'s options; 200 images are enough here) is written to a temporary folder, and
each phase of the demo's training is set up as the demo sets it up. Every code version runs in its own
subprocess (this tree, and with `--ref` an older commit from a temporary git worktree, with that commit's
demo settings), in four passes over the same batches:

1. parts: step by step as Lightning steps, timed part by part (fetch a batch; forward; the Hungarian
   matcher; the rest of the loss; backward; gradient clipping; AdamW step + zero_grad);
2. Trainer: the same number of steps through `Trainer.fit` as the demo builds it (logging, progress bar,
   hooks, clipping by the precision plugin; no validation): its step time minus the sum of the parts is
   what Lightning adds;
3. profile: torch.profiler over a few steps, the operators' own CPU time grouped into convolutions, matrix
   products, the deformable-attention gather, AdamW and everything else, with the number of operator calls;
4. FLOPs: `torch.utils.flop_counter` over one forward + backward, and a 1024^3 matrix product for this
   machine's sustained rate: the time the arithmetic would take at that rate.

Reported per part: median wall time and median process CPU time (steadier on a shared machine); the first
steps' losses (the same seed and data give the same first losses when the settings are the same).
"""

from __future__ import annotations

import argparse
import itertools
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
PARTS = ("data", "forward", "matcher", "loss", "backward", "clip", "optimizer")
CATEGORIES = {  # operator name fragments -> category of the profile table (first match wins)
    "convolutions": ("convolution", "conv2d", "mkldnn_conv"),
    "matrix products": ("aten::mm", "aten::addmm", "aten::bmm", "aten::linear", "aten::matmul", "baddbmm"),
    "deformable gather": ("embedding_bag", "grid_sampler"),
    "AdamW": ("_fused_adam", "_foreach_", "lerp", "addcdiv", "addcmul", "sqrt"),
}


def demo_phases(demo_arguments: list[str], folder: Path) -> list:
    """The demo's world (written to `folder`) and training settings per phase, as the importable egtr's
    demo builds them (its world and settings: those of that version)."""
    import egtr.cli.demo as demo
    from egtr.cli import build_parser

    args = build_parser().parse_args(["demo", *demo_arguments])
    demo.write_world(args, folder)
    if hasattr(demo, "demo_training"):  # one phase (this round)
        return [demo.demo_training(args, folder)]
    from egtr.engine.settings import merge, preset  # two phases (before)

    phases = demo.phase_overrides(args)
    return [
        merge(preset("synthetic", p), {**demo.recipe_overrides(args, folder), **phases[p]}) for p in phases
    ]


def forward(module, batch: dict):
    """The module's training forward, with denoising queries where this version and its settings have them."""
    queries = module.denoising_queries(batch["targets"]) if hasattr(module, "denoising_queries") else None
    if queries is None:
        return module(batch["pixel_values"], batch["pixel_mask"])
    return module(batch["pixel_values"], batch["pixel_mask"], queries)


def build(settings):
    import lightning as L

    from egtr.engine.datamodule import SceneGraphDataModule
    from egtr.engine.module import EGTRModule
    from egtr.engine.run import initialize, model_config

    L.seed_everything(settings.seed, workers=True, verbose=False)
    data = SceneGraphDataModule(settings)
    config, source = model_config(settings, data)
    module = EGTRModule(config, settings)
    initialize(module, source, settings, data)
    return data, module


class TimedMatcher(torch.nn.Module):
    """The criterion's matcher, timing each call (wall and CPU seconds added to `spent`)."""

    def __init__(self, matcher) -> None:
        super().__init__()
        self.matcher, self.spent = matcher, [0.0, 0.0]

    def forward(self, *args):
        wall, cpu = time.perf_counter(), time.process_time()
        result = self.matcher(*args)
        self.spent[0] += time.perf_counter() - wall
        self.spent[1] += time.process_time() - cpu
        return result


def manual_steps(settings, batches: list, warmup: int) -> dict:
    """Pass 1: the parts of each step."""
    _, module = build(settings)
    module.train()
    timed = TimedMatcher(module.criterion.matcher)
    module.criterion.matcher = timed
    optimizer = module.configure_optimizers()
    parameters = [p for group in optimizer.param_groups for p in group["params"]]
    wall = {part: [] for part in PARTS}
    cpu = {part: [] for part in PARTS}
    losses = []
    for index, batch in enumerate(batches):
        clock = [(time.perf_counter(), time.process_time())]

        def lap(clock=clock):
            clock.append((time.perf_counter(), time.process_time()))

        batch = batch()  # fetch (and collate) the batch
        lap()
        outputs = forward(module, batch)
        lap()
        timed.spent = [0.0, 0.0]
        loss = module.criterion(outputs, batch["targets"])["loss"]
        lap()
        loss.backward()
        lap()
        if settings.gradient_clip:
            torch.nn.utils.clip_grad_norm_(parameters, settings.gradient_clip)
        lap()
        optimizer.step()
        optimizer.zero_grad()
        lap()
        losses.append(loss.item())
        if index < warmup:
            continue
        spans = [
            (clock[i + 1][0] - clock[i][0], clock[i + 1][1] - clock[i][1]) for i in range(len(clock) - 1)
        ]
        spans.insert(2, tuple(timed.spent))  # the matcher, inside the loss
        spans[3] = (spans[3][0] - timed.spent[0], spans[3][1] - timed.spent[1])
        for part, (seconds, cpu_seconds) in zip(PARTS, spans):
            wall[part].append(seconds * 1000)
            cpu[part].append(cpu_seconds * 1000)
    return {
        "wall_ms": {part: statistics.median(values) for part, values in wall.items()},
        "cpu_ms": {part: statistics.median(values) for part, values in cpu.items()},
        "losses": losses[:5],
        "batch_size": settings.batch_size,
        "parameters": sum(p.numel() for p in parameters),
    }


def trainer_steps(settings, steps: int, warmup: int, folder: Path) -> dict:
    """Pass 2: the same number of steps through the Trainer the demo builds (no validation)."""
    import lightning as L

    from egtr.engine.run import build_trainer

    class StepClock(L.Callback):
        def __init__(self) -> None:
            self.marks: list[tuple[float, float]] = []

        def on_train_batch_start(self, *args) -> None:
            self.marks.append((time.perf_counter(), time.process_time()))

    data, module = build(settings)
    clock = StepClock()
    settings = settings.replace(max_steps=warmup + steps + 1, max_minutes=None, val_check_interval=10**6)
    trainer = build_trainer(settings, folder, [clock])
    trainer.limit_val_batches = 0
    trainer.fit(module, datamodule=data)
    marks = clock.marks[warmup:]
    wall = [(b[0] - a[0]) * 1000 for a, b in itertools.pairwise(marks)]
    cpu = [(b[1] - a[1]) * 1000 for a, b in itertools.pairwise(marks)]
    return {"wall_ms": statistics.median(wall), "cpu_ms": statistics.median(cpu)}


def profile_steps(settings, batches: list) -> dict:
    """Pass 3: the operators' own CPU time per step, by category."""
    from torch.profiler import ProfilerActivity, profile

    _, module = build(settings)
    module.train()
    optimizer = module.configure_optimizers()
    parameters = [p for group in optimizer.param_groups for p in group["params"]]

    def step(batch):
        outputs = forward(module, batch)
        module.criterion(outputs, batch["targets"])["loss"].backward()
        if settings.gradient_clip:
            torch.nn.utils.clip_grad_norm_(parameters, settings.gradient_clip)
        optimizer.step()
        optimizer.zero_grad()

    prepared = [batch() for batch in batches]
    for batch in prepared[:2]:
        step(batch)
    with profile(activities=[ProfilerActivity.CPU]) as profiler:
        for batch in prepared[2:]:
            step(batch)
    count = len(prepared) - 2
    totals = {name: 0.0 for name in (*CATEGORIES, "everything else")}
    calls, others = 0, {}
    for event in profiler.key_averages():
        if not event.key.startswith("aten::"):
            continue
        calls += event.count
        category = next(
            (name for name, keys in CATEGORIES.items() if any(key in event.key for key in keys)),
            "everything else",
        )
        totals[category] += event.self_cpu_time_total / 1000 / count
        if category == "everything else":
            others[event.key] = (event.self_cpu_time_total / 1000 / count, event.count / count)
    largest = dict(sorted(others.items(), key=lambda item: -item[1][0])[:8])
    return {"self_cpu_ms": totals, "operator_calls": calls / count, "largest_other": largest}


def flops(settings, batch) -> dict:
    """Pass 4: FLOPs of one forward + backward, and the sustained rate of a large matrix product."""
    from torch.utils.flop_counter import FlopCounterMode

    _, module = build(settings)
    module.train()
    batch = batch()
    counter = FlopCounterMode(display=False)
    with counter:
        outputs = forward(module, batch)
        module.criterion(outputs, batch["targets"])["loss"].backward()
    matrix = torch.randn(1024, 1024)
    for _ in range(3):
        matrix @ matrix
    started, repeats = time.process_time(), 10  # CPU time: the rate of the cores this process gets
    for _ in range(repeats):
        matrix @ matrix
    rate = repeats * 2 * 1024**3 / (time.process_time() - started)  # per second of CPU time
    return {"gflop": counter.get_total_flops() / 1e9, "gemm_gflops": rate / 1e9}


def worker(spec: dict) -> dict:
    """Run in the subprocess: every pass for every phase of the importable egtr's demo, in the heap mode
    `egtr demo` runs in (the CLI's `keep_freed_memory`: without it every large block freed is unmapped and
    the next step faults its pages in again, which added 10-30% to a step, BENCHMARKS.md)."""
    from egtr.memory import keep_freed_memory

    keep_freed_memory()
    if spec["threads"]:
        torch.set_num_threads(spec["threads"])
    results = {}
    with tempfile.TemporaryDirectory(prefix="egtr-world-") as folder:
        for index, settings in enumerate(demo_phases(spec["demo"], Path(folder) / "data"), start=1):
            data, _ = build(settings)
            loader, fetched = iter(data.train_dataloader()), []

            def fetch(loader=loader, fetched=fetched):
                try:
                    batch = next(loader)
                except StopIteration:  # a small world: reuse the batches of the epoch
                    batch = fetched[len(fetched) % len(fetched)]
                fetched.append(batch)
                return batch

            row = manual_steps(settings, [fetch] * (spec["warmup"] + spec["steps"]), spec["warmup"])
            replay = [lambda batch=batch: batch for batch in fetched]
            if spec["trainer"]:
                with tempfile.TemporaryDirectory(prefix="egtr-trainer-") as out:
                    row["trainer"] = trainer_steps(settings, spec["steps"], spec["warmup"], Path(out))
            row["profile"] = profile_steps(settings, replay[:6])
            row.update(flops(settings, replay[0]))
            results[f"{index}. {settings.phase}"] = row
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


def print_tables(rows: dict) -> None:
    print(
        "| code | phase | images/step | "
        + " | ".join(PARTS)
        + " | sum (wall) | sum (CPU) | Trainer step (wall / CPU) |"
    )
    print("|---|---|---:|" + "---:|" * (len(PARTS) + 3))
    for name, phases in rows.items():
        for phase, row in phases.items():
            cells = [f"{row['wall_ms'][part]:.0f}" for part in PARTS]
            wall, cpu = sum(row["wall_ms"].values()), sum(row["cpu_ms"].values())
            trainer = row.get("trainer")
            trainer_cell = f"{trainer['wall_ms']:.0f} / {trainer['cpu_ms']:.0f}" if trainer else "-"
            print(
                f"| {name} | {phase} | {row['batch_size']} | "
                + " | ".join(cells)
                + f" | {wall:.0f} | {cpu:.0f} | {trainer_cell} |"
            )
    print(
        "\nOperators' own CPU time per step (ms), and the arithmetic at this machine's matrix-product rate:\n"
    )
    names = [*list(CATEGORIES), "everything else"]
    print(
        "| code | phase | "
        + " | ".join(names)
        + " | operator calls | GFLOP (fwd+bwd) | CPU time at the GEMM rate |"
    )
    print("|---|---|" + "---:|" * (len(names) + 3))
    for name, phases in rows.items():
        for phase, row in phases.items():
            profile = row["profile"]
            cells = [f"{profile['self_cpu_ms'][category]:.0f}" for category in names]
            arithmetic = row["gflop"] / row["gemm_gflops"] * 1000
            print(
                f"| {name} | {phase} | "
                + " | ".join(cells)
                + f" | {profile['operator_calls']:.0f} | {row['gflop']:.1f} | {arithmetic:.0f} ms |"
            )


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--worker":
        print(json.dumps(worker(json.loads(Path(sys.argv[2]).read_text()))))
        return
    from egtr.hardware import describe

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--ref", help="also time this older commit with its own demo settings (e.g. d24c227)")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int)
    parser.add_argument("--no-trainer", action="store_true", help="skip the pass through the Trainer")
    parser.add_argument("--json", action="store_true")
    args, demo_arguments = parser.parse_known_args()
    demo_arguments = ["--images", "200", *demo_arguments]  # enough images for the steps timed here
    sys.path.insert(0, str(HERE.parent))
    from baseline import checkout

    rows = {}
    with tempfile.TemporaryDirectory(prefix="egtr-step-") as folder:
        folder = Path(folder)
        spec = {
            "demo": demo_arguments,
            "steps": args.steps,
            "warmup": args.warmup,
            "threads": args.threads,
            "trainer": not args.no_trainer,
        }
        if args.ref:
            with checkout(args.ref) as old_src:
                rows[f"egtr {args.ref}"] = run_version(old_src, spec, folder)
        rows["this tree"] = run_version(REPO / "src", spec, folder)
    if args.json:
        print(json.dumps({"machine": describe(), "spec": spec, "rows": rows}, indent=2))
        return
    print(f"{describe()}\nmedian of {args.steps} steps after {args.warmup}; milliseconds per step\n")
    print_tables(rows)
    for name, phases in rows.items():
        for phase, row in phases.items():
            largest = ", ".join(
                f"{op.removeprefix('aten::')} {ms:.0f} ms ({n:.0f} calls)"
                for op, (ms, n) in row["profile"]["largest_other"].items()
            )
            print(f"\n{name}, {phase}: largest of everything else: {largest}")
            print(f"first losses: {[round(v, 5) for v in row['losses']]}")


if __name__ == "__main__":
    main()
