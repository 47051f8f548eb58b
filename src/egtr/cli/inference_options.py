"""Options shared by `egtr evaluate` and `egtr predict`: logit adjustment and how image files are read.

Both default to the official evaluation (`evaluate_egtr.py`): no logit adjustment whatever the
checkpoint's config says (its --logit_adjustment / --logit_adj_tau override the config), pixels read as
`Image.open(path).convert("RGB")` does. The same flags give the same tensor and the same scores in both
commands.
"""

from __future__ import annotations

import argparse
import sys

from egtr.cli.errors import CommandError

DEFAULT_TAU = 0.3  # the official evaluation's --logit_adj_tau default


def add_inference_arguments(group: argparse._ActionsContainer) -> None:
    group.add_argument(
        "--logit-adjustment",
        action="store_true",
        help="post-hoc logit adjustment of the predicate scores, rel_logits - tau * log(predicate prior), "
        "as the official evaluation's --logit_adjustment (the paper's 'EGTR + logit adjustment' row); "
        "it overrides the checkpoint's config (default: off, whatever the config says, as officially)",
    )
    group.add_argument(
        "--logit-adj-tau",
        type=float,
        metavar="TAU",
        help=f"tau of --logit-adjustment (default: {DEFAULT_TAU}, as officially)",
    )
    group.add_argument(
        "--exif",
        action="store_true",
        help="apply the EXIF orientation of image files (default: off, pixels as stored, as the official "
        "loader)",
    )
    group.add_argument(
        "--image-conversion",
        default="official",
        choices=("official", "composite"),
        help="official: PIL's convert('RGB') as the official loader (alpha dropped, 16-bit clipped); "
        "composite: transparency on white, high bit depths scaled to 8 bits (default: %(default)s)",
    )


def apply_logit_adjustment(model, args: argparse.Namespace) -> None:
    """Set the model's logit adjustment from the flags (a note when the checkpoint's config differs)."""
    if args.logit_adj_tau is not None and not args.logit_adjustment:
        raise CommandError("--logit-adj-tau has no effect without --logit-adjustment")
    tau = DEFAULT_TAU if args.logit_adj_tau is None else args.logit_adj_tau
    if model.config.logit_adjustment and not args.logit_adjustment:
        print(
            f"note: the checkpoint's config enables logit adjustment (tau {model.config.logit_adj_tau}); "
            "it is off here, as in the official evaluation: pass --logit-adjustment to use it",
            file=sys.stderr,
        )
    try:
        model.set_logit_adjustment(args.logit_adjustment, tau)
    except ValueError as error:
        raise CommandError(f"--logit-adjustment: {error}") from error


def image_reading(args: argparse.Namespace, max_pixels: int | None = None):
    """The `ImageReading` the flags ask for."""
    from egtr.inference.images import ImageReading

    return ImageReading(exif=args.exif, conversion=args.image_conversion, max_pixels=max_pixels)


def inference_settings(model, args: argparse.Namespace) -> dict:
    """The options as recorded in a report's settings."""
    return {
        "logit_adjustment": model.config.logit_adjustment,
        "logit_adj_tau": model.config.logit_adj_tau if model.config.logit_adjustment else None,
        "exif_orientation": args.exif,
        "image_conversion": args.image_conversion,
    }
