"""Serving throughput: `egtr serve` on 127.0.0.1 answering 1, 4 and 16 concurrent clients.

The server runs in its own process (`python -m egtr serve`), the clients are threads of this one posting
photo-like 640 x 480 JPEGs (8 distinct images) as raw bytes; every answer is checked to be 200. For each
--max-batch (default: 1 = no batching, and 8) and each client count: a warm-up of 2 requests per
client, then the timed requests; images/s = requests / wall time, latency per request (send to
answer), mean batch = images per forward pass over the timed run (from /healthz). Small config with
random weights (speed does not depend on them) unless --checkpoint is given; images resized to
--size/--max-size (default 128/213, the demo's scale).

    python benchmarks/bench_serve.py
    python benchmarks/bench_serve.py --clients 1 4 16 --requests 128 --max-batch 1 8
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from egtr import EGTRConfig
from egtr.checkpoints import save_model
from egtr.hardware import describe
from egtr.models.egtr import EGTR

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository: benchmarks.serve_load

from benchmarks.serve_load import ServerProcess, get_json, run_clients


def photo_like(seed: int, height: int = 480, width: int = 640) -> bytes:
    """JPEG bytes with smooth structure plus noise (compressing like a photo rather than pure noise)."""
    import io

    rng = np.random.default_rng(seed)
    rows, columns = np.mgrid[0:height, 0:width]
    phase = rng.uniform(0, 2 * np.pi, 3)
    base = np.stack([np.sin(rows / 37 + columns / 53 + p) for p in phase], axis=-1) * 80 + 128
    stream = io.BytesIO()
    Image.fromarray(np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)).save(
        stream, format="JPEG", quality=90
    )
    return stream.getvalue()


def measure(url: str, bodies: list[bytes], clients: int, requests: int) -> dict:
    run_clients(url, bodies, clients, 2 * clients)  # warm-up: threads, allocator, first batches
    before = get_json(f"{url}/healthz")
    result = run_clients(url, bodies, clients, requests)
    after = get_json(f"{url}/healthz")
    statuses = {answer.status for answer in result.answers}
    if statuses != {200}:
        raise RuntimeError(f"answers other than 200: {statuses}")
    batches = after["batches"] - before["batches"]
    return {
        "clients": clients,
        "images_per_second": result.images_per_second,
        "p50_s": result.latency(0.5),
        "p95_s": result.latency(0.95),
        "mean_batch": (after["images"] - before["images"]) / max(batches, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 4, 16], help="(default: %(default)s)")
    parser.add_argument(
        "--requests", type=int, default=96, help="timed requests per setting (default: %(default)s)"
    )
    parser.add_argument("--max-batch", type=int, nargs="+", default=[1, 8], help="(default: %(default)s)")
    parser.add_argument("--checkpoint", help="a model to serve (default: the small config, random weights)")
    parser.add_argument("--size", type=int, default=128, help="shorter image side (default: %(default)s)")
    parser.add_argument("--max-size", type=int, default=213, help="longest side cap (default: %(default)s)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto (default: %(default)s)")
    args = parser.parse_args()
    bodies = [photo_like(seed) for seed in range(8)]
    with tempfile.TemporaryDirectory() as folder:
        checkpoint = args.checkpoint
        if checkpoint is None:
            torch.manual_seed(0)
            checkpoint = str(save_model(EGTR(EGTRConfig.small()).eval(), Path(folder) / "small.safetensors"))
        print(f"machine: {describe()}; load average {os.getloadavg()[0]:.2f}")
        print(f"model: {checkpoint}; images 640x480 JPEG -> --size {args.size} --max-size {args.max_size}")
        print("| --max-batch | clients | images/s | p50 latency | p95 latency | mean batch |")
        print("|---:|---:|---:|---:|---:|---:|")
        for max_batch in args.max_batch:
            serve = ["--checkpoint", checkpoint, "--max-batch", str(max_batch), "--device", args.device]
            serve += ["--size", str(args.size), "--max-size", str(args.max_size), "--log-level", "warning"]
            with ServerProcess(serve) as server:
                for clients in args.clients:
                    row = measure(server.url, bodies, clients, args.requests)
                    rate, p50, p95 = row["images_per_second"], row["p50_s"] * 1000, row["p95_s"] * 1000
                    print(
                        f"| {max_batch} | {clients} | {rate:.1f} | {p50:.0f} ms | {p95:.0f} ms "
                        f"| {row['mean_batch']:.1f} |",
                        flush=True,
                    )


if __name__ == "__main__":
    main()
