"""`egtr analyze`: what a trained model's relation sources and self-attention know, over a dataset split."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from egtr.cli.datasets import (
    add_protocol_argument,
    add_split_argument,
    check_fits,
    load_split,
    resolve_protocol,
)
from egtr.cli.errors import CommandError
from egtr.cli.options import add_checkpoint_argument, add_device_argument, add_size_arguments
from egtr.sizes import EVAL_MAX_SIZE, EVAL_SIZE
from egtr.studies.synthetic import IMAGE_SIZE

DEFAULT_OUT = Path("egtr-output/analyze")


def add_parser(subparsers, parents) -> None:
    from egtr.studies.analysis import AnalysisOptions

    defaults = AnalysisOptions()
    parser = subparsers.add_parser(
        "analyze",
        parents=parents,
        help="dataset-level analysis: relation-source gates and probes, attention evidence, failures",
        description="Analyse a model over a dataset split. Ground-truth objects are assigned to queries by "
        "the training Hungarian matcher. Per relation source: the mean gate on related vs unrelated object "
        "pairs and a linear probe's ROC AUC (related vs unrelated, from that source's pair features alone). "
        "Per "
        "decoder layer: the self-attention weight between the two objects' queries for related vs "
        "unrelated pairs (distributions, Cohen's d, AUC). Per predicate: recall and the confusion between "
        "predicates; and where each ground-truth triplet fails (object missed, wrong predicate, ranked "
        "too low). Writes OUT/analysis.json, OUT/analysis.md and PNG figures.",
    )
    add_checkpoint_argument(parser, required=True)
    parser.add_argument(
        "--data",
        type=Path,
        help="dataset folder in any supported layout (default: the demo's synthetic world, written to "
        "OUT/data: the held-out images of a model trained by egtr demo)",
    )
    add_split_argument(parser, "analyse")
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help=f"report folder (default: {DEFAULT_OUT})"
    )
    add_size_arguments(
        parser,
        (
            f"{EVAL_SIZE}, or the synthetic world's {IMAGE_SIZE} without --data",
            f"{EVAL_MAX_SIZE}, or {2 * IMAGE_SIZE} without --data",
        ),
    )
    parser.add_argument(
        "--batch-size", type=int, default=defaults.batch_size, help="images per forward pass (default: 1)"
    )
    add_device_argument(parser)
    parser.add_argument("--workers", type=int, default=0, help="data loader workers (default: 0)")
    parser.add_argument(
        "--max-images", type=int, help="analyse only the first N images of the split (default: all)"
    )
    parser.add_argument(
        "--max-unrelated-per-image",
        type=int,
        default=defaults.max_unrelated_per_image,
        help=f"unrelated object pairs drawn per image (default: {defaults.max_unrelated_per_image})",
    )
    parser.add_argument(
        "--probe-images",
        type=int,
        default=defaults.probe_images,
        help=f"the first N images feed the linear probes (default: {defaults.probe_images})",
    )
    parser.add_argument(
        "--top-k",
        type=int,
        default=defaults.top_k,
        help=f"K of the per-predicate recall and of the failure analysis (default: {defaults.top_k})",
    )
    add_protocol_argument(parser)
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of the pair sampling and probe split (default: 0)"
    )
    parser.add_argument(
        "--json", action="store_true", help="print analysis.json instead of a summary (default: off)"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from egtr.checkpoints import load_model
    from egtr.devices import resolve_device
    from egtr.studies.analysis import AnalysisOptions, analyze_split
    from egtr.studies.analysis_report import write_analysis
    from egtr.studies.synthetic import ensure_synthetic_data

    for name in ("batch_size", "top_k", "probe_images", "max_unrelated_per_image"):
        if getattr(args, name) < (0 if name in ("probe_images", "max_unrelated_per_image") else 1):
            raise CommandError(f"--{name.replace('_', '-')} is too small: {getattr(args, name)}")
    default_size = (EVAL_SIZE, EVAL_MAX_SIZE) if args.data else (IMAGE_SIZE, 2 * IMAGE_SIZE)
    data = args.data or ensure_synthetic_data(args.out / "data")
    split = load_split(data, args.split)
    model = load_model(args.checkpoint)
    check_fits(model.config, split, args.checkpoint)
    protocol = resolve_protocol(args.protocol, split)
    options = AnalysisOptions(
        size=args.size or default_size[0],
        max_size=args.max_size or default_size[1],
        batch_size=args.batch_size,
        device=str(resolve_device(args.device)),
        workers=args.workers,
        max_images=args.max_images,
        max_unrelated_per_image=args.max_unrelated_per_image,
        probe_images=args.probe_images,
        top_k=args.top_k,
        protocol=protocol,
        seed=args.seed,
    )
    analysis, arrays = analyze_split(model, split.records, split.predicate_names, options)
    analysis["settings"] = {
        "checkpoint": str(args.checkpoint),
        "data": str(data),
        "layout": split.layout,
        "split": args.split,
        "matching": "training Hungarian matcher (the model's costs, no smoothing)",
        "probe features": "ungated [a_i; b_j; a_i * b_j] of each source; logistic regression fitted on "
        "half of the images",
        **{key: value for key, value in vars(options).items() if key != "progress"},
    }
    paths = write_analysis(args.out, analysis, arrays)
    if args.json:
        print(paths[0].read_text(encoding="utf-8"))
        return 0
    print(_summary(analysis))
    print("report: " + ", ".join(str(path) for path in paths))
    return 0


def _summary(analysis: dict) -> str:
    lines = [
        f"{analysis['counts']['images']} images, {analysis['counts']['related pairs']} related and "
        f"{analysis['counts']['unrelated pairs']} unrelated object pairs"
    ]
    for row in analysis["sources"]:
        auc = "–" if row["probe_auc"] is None else f"{row['probe_auc']:.3f}"
        gates = [row["gate_related"], row["gate_unrelated"]]
        gate_text = " / ".join("–" if value is None else f"{value:.3f}" for value in gates)
        lines.append(f"  {row['source']:14s} gate related/unrelated {gate_text}  probe AUC {auc}")
    for row in analysis["attention"]["layers"]:
        stats = row["forward"]
        d = "–" if stats["cohen_d"] is None else f"{stats['cohen_d']:.2f}"
        auc = "–" if stats["auc"] is None else f"{stats['auc']:.3f}"
        lines.append(f"  attention layer {row['layer']}: Cohen's d {d}, AUC {auc}")
    lines.append("  failures: " + json.dumps(analysis["failures"]))
    return "\n".join(lines)
