"""`egtr info`: the model summary and parameter counts of a preset, config or checkpoint."""

from __future__ import annotations

import argparse
import json

from egtr.cli.options import add_model_arguments, model_from_args


def add_parser(subparsers, parents) -> None:
    parser = subparsers.add_parser(
        "info",
        parents=parents,
        help="model summary and parameter count",
        description="Print the architecture summary and parameter counts of a model.",
    )
    add_model_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON (default: off)")
    parser.set_defaults(func=run)


def model_summary(model) -> dict:
    parts = {
        "backbone": model.detector.backbone,
        "input projections": model.detector.input_proj,
        "encoder": model.detector.encoder,
        "decoder": model.detector.decoder,
        "detection heads": [model.detector.class_embed, model.detector.bbox_embed],
        "queries and reference points": [
            model.detector.query_position_embeddings,
            model.detector.reference_points,
        ],
        "relation head": model.relation_head,
    }
    counts = {}
    for name, modules in parts.items():
        modules = modules if isinstance(modules, list) else [modules]
        counts[name] = sum(p.numel() for m in modules for p in m.parameters())
    counts["queries and reference points"] += model.detector.level_embed.numel()
    counts["frequency bias tables (not trained)"] = sum(p.numel() for p in model.frequency_bias.parameters())
    config = model.config
    return {
        "parameters": sum(p.numel() for p in model.parameters()),
        "trainable_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "parts": counts,
        "architecture": {
            "backbone": f"ResNet-{config.backbone_depth}"
            + ("" if config.backbone_width == 64 else f" (first-stage width {config.backbone_width})"),
            "d_model": config.d_model,
            "encoder_layers": config.encoder_layers,
            "decoder_layers": config.decoder_layers,
            "feature_levels": config.num_feature_levels,
            "queries": config.num_queries,
            "object_classes": config.num_labels,
            "predicates": config.num_rel_labels,
            "relation_sources": config.num_relation_sources,
            "relation_function": config.relation_function,
            "connectivity_head": config.use_connectivity,
            "frequency_bias": config.frequency_bias_mode if config.use_freq_bias else "off",
        },
    }


def run(args: argparse.Namespace) -> int:
    summary = model_summary(model_from_args(args))
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    from rich.console import Console
    from rich.table import Table

    console = Console()
    architecture = Table(title="EGTR architecture", show_header=False)
    for key, value in summary["architecture"].items():
        architecture.add_row(key.replace("_", " "), str(value))
    console.print(architecture)
    parts = Table(title="Parameters")
    parts.add_column("part")
    parts.add_column("parameters", justify="right")
    for name, count in summary["parts"].items():
        parts.add_row(name, f"{count:,}")
    parts.add_row("[bold]total[/bold]", f"[bold]{summary['parameters']:,}[/bold]")
    parts.add_row("trainable", f"{summary['trainable_parameters']:,}")
    console.print(parts)
    return 0
