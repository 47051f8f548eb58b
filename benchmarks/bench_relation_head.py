"""Relation head at N=200 (Visual Genome preset): factorized vs naive pair tensor, time and peak memory.

Usage: python benchmarks/bench_relation_head.py [--queries 200] [--repeats 5] [--backward]
Inputs are random decoder by-products of the right shapes; the full forward at 600x1000 is timed with
`egtr benchmark`. Peak memory: RSS growth during one call on CPU, allocator peak on CUDA.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.reference_relation_head import naive_relation_head

from egtr.benchmark import median_time_ms, peak_memory_mb
from egtr.config import EGTRConfig
from egtr.models.relation_head import RelationHead


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--backward", action="store_true", help="time forward + backward (training)")
    args = parser.parse_args()
    device = torch.device(args.device)
    config = EGTRConfig.visual_genome()
    head = RelationHead(config).to(device)
    n, d, layers = args.queries, config.d_model, config.decoder_layers
    queries = torch.randn(1, layers, n, d, device=device, requires_grad=args.backward)
    keys = torch.randn(1, layers, n, d, device=device, requires_grad=args.backward)
    hidden = torch.randn(1, n, d, device=device, requires_grad=args.backward)

    def ours():
        rel, conn, _ = head(queries, keys, hidden)
        if args.backward:
            (rel.sum() + conn.sum()).backward()

    def naive():
        rel, conn, _ = naive_relation_head(
            head, queries, keys, hidden, "concat", config.decoder_attention_heads
        )
        if args.backward:
            (rel.sum() + conn.sum()).backward()

    results = {}
    for name, run in (("factorized", ours), ("naive", naive)):
        context = torch.enable_grad() if args.backward else torch.inference_mode()
        with context:
            memory = peak_memory_mb(run, device)
            time_ms = median_time_ms(run, device, 1, args.repeats)
        results[name] = {"time_ms": round(time_ms, 1), "peak_memory_mb": round(memory, 1)}
    results["memory_ratio"] = round(
        results["naive"]["peak_memory_mb"] / results["factorized"]["peak_memory_mb"], 2
    )
    results["speedup"] = round(results["naive"]["time_ms"] / results["factorized"]["time_ms"], 2)
    results["settings"] = {
        "queries": n,
        "device": str(device),
        "threads": torch.get_num_threads(),
        "mode": "forward+backward" if args.backward else "inference",
        "repeats": args.repeats,
    }
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
