"""Where the time of one EGTR forward goes: per-stage wall time and the top operators.

Usage: python benchmarks/profile_forward.py [--size 600 1000 --size 800 1333] [--repeats 3]
           [--precision fp32] [--preset visual_genome] [--top 15] [--json]

Stages (median over the repeats, one forward = batch 1 of random input, random weights, inference mode):
backbone (ResNet), input projection (1x1/3x3 projections, masks, sine position embedding, flattening, valid
ratios: everything between the backbone and the encoder), encoder, decoder, detection heads (class/box
heads), relation head, frequency bias and outputs, and post-processing (`egtr.inference.postprocess`, timed
on the forward's outputs). Stage boundaries come from forward hooks on the model's sub-modules, so the
model is timed as it is. The operator table is `torch.profiler`'s self CPU time of one more forward.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from egtr.config import EGTRConfig
from egtr.hardware import describe
from egtr.inference.postprocess import PostprocessOptions, postprocess
from egtr.models.egtr import EGTR
from egtr.precision import autocast


class StageClock:
    """Forward hooks that stamp the start of every stage; `stages()` turns one forward's stamps into ms."""

    def __init__(self, model: EGTR) -> None:
        self.stamps: dict[str, float] = {}
        modules = dict(model.named_modules())
        starts = {
            "backbone": (modules["detector.backbone"], "pre"),
            "input projection": (modules["detector.backbone"], "post"),
            "encoder": (modules["detector.encoder"], "pre"),
            "decoder": (modules["detector.decoder"], "pre"),
            "detection heads": (modules["detector.decoder"], "post"),
            "relation head": (modules["relation_head"], "pre"),
            "frequency bias, outputs": (modules["relation_head"], "post"),
        }
        self.order = list(starts)
        for name, (module, when) in starts.items():
            stamp = self._stamper(name)
            if when == "pre":
                module.register_forward_pre_hook(lambda *_, stamp=stamp: stamp())
            else:
                module.register_forward_hook(lambda *_, stamp=stamp: stamp())

    def _stamper(self, name: str):
        def stamp() -> None:
            self.stamps[name] = time.perf_counter()

        return stamp

    def stages(self, end: float) -> dict[str, float]:
        times = [self.stamps[name] for name in self.order] + [end]
        return {name: (times[i + 1] - times[i]) * 1000 for i, name in enumerate(self.order)}


def profile_size(
    model: EGTR, height: int, width: int, precision: str, repeats: int, top: int
) -> dict[str, object]:
    torch.manual_seed(0)
    pixels = torch.randn(1, 3, height, width)
    mask = torch.ones(1, height, width, dtype=torch.bool)
    sizes = torch.tensor([[height, width]])
    clock = StageClock(model)
    per_stage: dict[str, list[float]] = {}
    totals = []
    with torch.inference_mode(), autocast("cpu", precision):
        model(pixels, mask)  # warm-up
        for _ in range(repeats):
            start = time.perf_counter()
            outputs = model(pixels, mask)
            end = time.perf_counter()
            postprocess(outputs, sizes, PostprocessOptions.visual_genome())
            done = time.perf_counter()
            stages = clock.stages(end)
            stages["post-processing"] = (done - end) * 1000
            for name, ms in stages.items():
                per_stage.setdefault(name, []).append(ms)
            totals.append((done - start) * 1000)
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as profiler:
            model(pixels, mask)
    total = statistics.median(totals)
    stage_ms = {name: statistics.median(values) for name, values in per_stage.items()}
    events = sorted(profiler.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    profiled_total = sum(e.self_cpu_time_total for e in events)
    operators = [
        {
            "operator": e.key,
            "calls": e.count,
            "self_ms": e.self_cpu_time_total / 1000,
            "share": e.self_cpu_time_total / profiled_total,
        }
        for e in events[:top]
    ]
    return {
        "size": [height, width],
        "total_ms": total,
        "stages_ms": stage_ms,
        "stage_share": {name: ms / total for name, ms in stage_ms.items()},
        "top_operators": operators,
    }


def print_markdown(result: dict) -> None:
    height, width = result["size"]
    print(
        f"\n### {height}x{width}: {result['total_ms'] / 1000:.2f} s per image (forward + post-processing)\n"
    )
    print("| stage | time | share |\n|---|---:|---:|")
    for name, ms in result["stages_ms"].items():
        print(f"| {name} | {ms:.0f} ms | {100 * result['stage_share'][name]:.1f}% |")
    print("\n| operator | calls | self time | share |\n|---|---:|---:|---:|")
    for op in result["top_operators"]:
        print(f"| `{op['operator']}` | {op['calls']} | {op['self_ms']:.0f} ms | {100 * op['share']:.1f}% |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--size", nargs=2, type=int, action="append", metavar=("H", "W"))
    parser.add_argument("--preset", default="visual_genome", choices=EGTRConfig.PRESETS)
    parser.add_argument("--precision", default="fp32", choices=("fp32", "bf16", "fp16"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--top", type=int, default=15, help="operators listed (default: 15)")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = EGTR(EGTRConfig.preset(args.preset)).eval()
    results = [
        profile_size(model, h, w, args.precision, args.repeats, args.top)
        for h, w in (args.size or [(600, 1000), (800, 1333)])
    ]
    if args.json:
        print(json.dumps({"machine": describe(), "precision": args.precision, "results": results}, indent=2))
        return
    print(f"{describe()}; {args.preset}, {args.precision}, batch 1, median of {args.repeats}")
    for result in results:
        print_markdown(result)


if __name__ == "__main__":
    main()
