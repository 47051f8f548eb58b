"""Command-line options that choose a model: a preset, a config file, or a checkpoint."""

from __future__ import annotations

import argparse

from egtr.cli.errors import CommandError
from egtr.config import EGTRConfig


def add_model_arguments(parser: argparse.ArgumentParser, default_preset: str = "visual_genome") -> None:
    group = parser.add_argument_group("model")
    group.add_argument(
        "--checkpoint", help="a model file or directory that egtr.load_model accepts (default: none)"
    )
    group.add_argument(
        "--preset",
        default=default_preset,
        choices=EGTRConfig.PRESETS,
        help=f"architecture preset when no checkpoint is given (default: {default_preset})",
    )
    group.add_argument("--config", help="an EGTRConfig JSON file instead of a preset (default: none)")
    group.add_argument(
        "--backbone-weights",
        metavar="FILE",
        help="ImageNet ResNet weights saved by torchvision or timm (default: none)",
    )


def model_from_args(args: argparse.Namespace):
    """Build or load the EGTR model the options describe."""
    from egtr.checkpoints import load_backbone_file, load_model
    from egtr.models.egtr import EGTR

    if args.checkpoint and args.config:
        raise CommandError("give either --checkpoint or --config, not both")
    if args.checkpoint:
        model = load_model(args.checkpoint)
    else:
        config = EGTRConfig.from_file(args.config) if args.config else EGTRConfig.preset(args.preset)
        model = EGTR(config).eval()
    if args.backbone_weights:
        load_backbone_file(model, args.backbone_weights)
    return model
