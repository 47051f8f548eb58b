"""Serving: throughput, latency under stalled clients, memory under large uploads, 1 vs 2 workers.

`egtr serve` runs in its own process (`python -m egtr serve`) on 127.0.0.1; clients are threads of this
one posting photo-like 640 x 480 JPEGs (8 distinct images) as raw bytes, and every answer is checked to
be 200. Small config with random weights (speed does not depend on them) unless --checkpoint is given;
images resized to --size/--max-size (default 128/213, the demo's scale). One command prints every table
of BENCHMARKS.md's serving section, with the machine and its load:

1. throughput: for each --max-batch (1 = no batching, and 8) and client count (1, 4, 16): a warm-up of 2
   requests per client, then the timed requests; images/s = requests / wall time, latency per request
   (send to answer), mean batch = images per forward pass (from /healthz);
2. stalled clients: 16 clients with --max-batch 8, alone and while 150 clients from their own loopback
   addresses stall (50 after a complete head, 50 in their head, 50 after 1 MB of their body);
3. memory: the peak resident growth of a server with the default limits while 48 clients upload a 19 MB
   PNG each, then a 39.9-megapixel image each, against the bound it states in GET /v1/model;
4. workers: 16 clients, --max-batch 8, --workers 1 and 2.

    python benchmarks/bench_serve.py
    python benchmarks/bench_serve.py --sections throughput workers --requests 128
"""

from __future__ import annotations

import argparse
import io
import os
import socket
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from egtr import EGTRConfig
from egtr.checkpoints import save_model
from egtr.hardware import describe
from egtr.models.egtr import EGTR

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository: benchmarks.serve_load

from benchmarks.serve_load import ServerProcess, get_json, loopback, run_clients, worker_healths

SECTIONS = ("throughput", "stalled", "memory", "workers")
SOURCES = [loopback(200 + index) for index in range(4)]  # the measured clients: 4 addresses


def photo_like(seed: int, height: int = 480, width: int = 640) -> bytes:
    """JPEG bytes with smooth structure plus noise (compressing like a photo rather than pure noise)."""
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
    run_clients(url, bodies, clients, 2 * clients, sources=SOURCES)  # warm-up: threads, first batches
    before = get_json(f"{url}/healthz")
    result = run_clients(url, bodies, clients, requests, sources=SOURCES)
    after = get_json(f"{url}/healthz")
    statuses = {answer.status for answer in result.answers}
    if statuses != {200}:
        raise RuntimeError(f"answers other than 200: {statuses}")
    batches = after["batches"] - before["batches"]
    return {
        "images_per_second": result.images_per_second,
        "p50_ms": result.latency(0.5) * 1000,
        "p95_ms": result.latency(0.95) * 1000,
        "mean_batch": (after["images"] - before["images"]) / max(batches, 1),
    }


def row(*cells) -> str:
    return "| " + " | ".join(str(cell) for cell in cells) + " |"


def timing(result: dict) -> list[str]:
    return [
        f"{result['images_per_second']:.1f}",
        f"{result['p50_ms']:.0f} ms",
        f"{result['p95_ms']:.0f} ms",
        f"{result['mean_batch']:.1f}",
    ]


def stall(stack: ExitStack, port: int, count: int = 150) -> None:
    head = b"POST /v1/scene-graph HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 19000000\r\n\r\n"
    for index in range(count):
        data = (head, head[:40], head + bytes(1_000_000))[index % 3]
        connection = socket.create_connection(
            ("127.0.0.1", port), timeout=60, source_address=(loopback(index), 0)
        )
        stack.enter_context(connection)
        connection.sendall(data)


def noise_png(side: int = 2516) -> bytes:
    stream = io.BytesIO()
    pixels = np.random.default_rng(0).integers(0, 256, (side, side, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(stream, format="PNG", compress_level=0)
    return stream.getvalue()


def flat_jpeg(width: int = 7300, height: int = 5470) -> bytes:
    stream = io.BytesIO()
    Image.new("RGB", (width, height), (120, 130, 140)).save(stream, format="JPEG")
    return stream.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sections", nargs="+", default=list(SECTIONS), choices=SECTIONS)
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
        common = ["--checkpoint", checkpoint, "--device", args.device, "--log-level", "warning"]
        common += ["--size", str(args.size), "--max-size", str(args.max_size)]
        print(f"machine: {describe()}")
        print(f"load average at the start: {os.getloadavg()[0]:.2f} ({os.cpu_count()} cores)")
        print(f"model: {checkpoint}; images 640x480 JPEG -> --size {args.size} --max-size {args.max_size}\n")
        if "throughput" in args.sections:
            print(row("--max-batch", "clients", "images/s", "p50 latency", "p95 latency", "mean batch"))
            print(row(*["---:"] * 6))
            for max_batch in args.max_batch:
                with ServerProcess([*common, "--max-batch", str(max_batch)]) as server:
                    for clients in args.clients:
                        print(
                            row(
                                max_batch,
                                clients,
                                *timing(measure(server.url, bodies, clients, args.requests)),
                            )
                        )
            print()
        if "stalled" in args.sections:
            print(row("16 clients, --max-batch 8", "images/s", "p50 latency", "p95 latency", "mean batch"))
            print(row("---", *["---:"] * 4))
            with ServerProcess([*common, "--max-batch", "8"]) as server:
                print(row("alone", *timing(measure(server.url, bodies, 16, args.requests))))
                with ExitStack() as stack:
                    stall(stack, server.port)
                    time.sleep(1)
                    result = measure(server.url, bodies, 16, args.requests)
                    health = get_json(f"{server.url}/healthz")
                print(row("with 150 stalled clients", *timing(result)))
                print(
                    f"(while stalled: {health['connections']} connections, "
                    f"{health['bodies_arriving']} bodies arriving)"
                )
            print()
        if "memory" in args.sections:
            print(row("48 concurrent uploads (default limits)", "peak RSS growth", "stated bound", "time"))
            print(row("---", "---:", "---:", "---:"))
            small = ["--size", "48", "--max-size", "64", "--timeout", "300"]
            with ServerProcess(["--checkpoint", checkpoint, "--log-level", "warning", *small]) as server:
                run_clients(server.url, bodies, 8, 32, sources=SOURCES)
                bound = get_json(f"{server.url}/v1/model")["memory"]["bytes"]
                for label, upload in (("19 MB PNG each", noise_png()), ("39.9 MP JPEG each", flat_jpeg())):
                    before = server.rss_bytes()
                    server.reset_peak()
                    result = run_clients(server.url, [upload], 48, 48, sources=SOURCES)
                    if {answer.status for answer in result.answers} != {200}:
                        raise RuntimeError(f"answers other than 200 in the memory test ({label})")
                    growth = server.peak_rss_bytes() - before
                    print(
                        row(
                            label,
                            f"{growth / 2**20:.0f} MiB",
                            f"{bound / 2**20:.0f} MiB",
                            f"{result.seconds:.1f} s",
                        )
                    )
            print()
        if "workers" in args.sections:
            print(
                row(
                    "--workers (16 clients, --max-batch 8)",
                    "images/s",
                    "p50 latency",
                    "p95 latency",
                    "mean batch",
                )
            )
            print(row("---:", *["---:"] * 4))
            for workers in (1, 2):
                with ServerProcess([*common, "--max-batch", "8", "--workers", str(workers)]) as server:
                    worker_healths(server.url, workers)  # every worker has loaded its model
                    print(row(workers, *timing(measure(server.url, bodies, 16, args.requests))))
            print()
        print(f"load average at the end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
