"""Time EGTR's forward pass with whatever `egtr` is importable (run by `baseline.py` once per code version).

Usage: python benchmarks/time_forward.py --weights W.pt --inputs X.pt [--outputs Y.pt] [--warmup 1]
           [--repeats 3] [--precision fp32|bf16|fp16] [--compile] [--threads N] [--device cpu]

Self-contained on purpose: it uses only `egtr.config.EGTRConfig` and `egtr.models.egtr.EGTR`, which every
version of egtr has, so the same protocol times today's code and an older commit (PYTHONPATH decides which
one is imported). The model comes from `--weights` (a dict {"preset": name, "state": state dict} saved with
torch.save, loaded with weights_only=True), the input from `--inputs` ({"pixel_values",
"pixel_mask"}). Prints one JSON line: median wall latency and median process CPU time per forward (CPU time
is the steadier number on a shared machine), images/s, and the peak resident memory of the whole process
(VmHWM: Python, torch, weights and the forward together). `--outputs` saves the raw outputs for comparison.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
OUTPUT_FIELDS = ("logits", "pred_boxes", "rel_logits", "connectivity_logits", "attention_queries")


def peak_process_memory_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--weights", type=Path, required=True)
    parser.add_argument("--inputs", type=Path, required=True)
    parser.add_argument("--outputs", type=Path)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--precision", default="fp32", choices=tuple(DTYPES))
    parser.add_argument("--compile", action="store_true", help="torch.compile the model first")
    parser.add_argument("--threads", type=int)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from egtr.config import EGTRConfig
    from egtr.models.egtr import EGTR

    saved = torch.load(args.weights, weights_only=True)
    model = EGTR(EGTRConfig.preset(saved["preset"]))
    model.load_state_dict(saved["state"])
    device = torch.device(args.device)
    model = model.to(device).eval()
    inputs = torch.load(args.inputs, weights_only=True)
    pixels, mask = inputs["pixel_values"].to(device), inputs["pixel_mask"].to(device)
    forward = torch.compile(model) if args.compile else model
    dtype = DTYPES[args.precision]

    def run():
        with torch.inference_mode(), torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            outputs = forward(pixels, mask)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return outputs

    for _ in range(args.warmup):
        outputs = run()
    wall, cpu = [], []
    for _ in range(args.repeats):
        start_wall, start_cpu = time.perf_counter(), time.process_time()
        outputs = run()
        wall.append((time.perf_counter() - start_wall) * 1000)
        cpu.append((time.process_time() - start_cpu) * 1000)
    if args.outputs:
        torch.save({k: getattr(outputs, k).float().cpu() for k in OUTPUT_FIELDS}, args.outputs)
    latency = statistics.median(wall)
    result = {
        "latency_ms": latency,
        "cpu_ms": statistics.median(cpu),
        "images_per_second": len(pixels) * 1000 / latency,
        "peak_process_memory_mb": peak_process_memory_mb(),
        "threads": torch.get_num_threads(),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
