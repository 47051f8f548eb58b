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
    """Set the logit adjustment of `model` (an EGTR or a runtime backend: anything with `config` and
    `rel_dist`) from the flags, with a note when the checkpoint's config differs."""
    from egtr.models.egtr import logit_adjusted

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
        model.config = logit_adjusted(model.config, model.rel_dist, args.logit_adjustment, tau)
    except ValueError as error:
        raise CommandError(f"--logit-adjustment: {error}") from error


def add_backend_arguments(parser: argparse._ActionsContainer) -> None:
    parser.add_argument(
        "--backend",
        default="torch",
        choices=("torch", "onnxruntime", "openvino"),
        help="what runs the network: PyTorch, or an exported model in ONNX Runtime or OpenVINO (CPU); "
        "the post-processing and the JSON are the same for all (default: torch)",
    )
    parser.add_argument(
        "--precision",
        default="fp32",
        choices=("fp32", "bf16", "fp16"),
        help="fp32 (exact) or bf16/fp16: autocast with torch (a note says when the CPU emulates it), "
        "OpenVINO's inference precision where the CPU has it natively; onnxruntime: fp32 only "
        "(default: fp32)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        metavar="N",
        help="threads of the runtime that runs the network (default: the runtime's own choice)",
    )


def build_backend(args: argparse.Namespace, checkpoint):
    """The runtime backend --backend names, with the logit adjustment of the flags (a note on stderr when
    the CPU emulates --precision)."""
    import torch

    from egtr.export.exporter import load_backend
    from egtr.precision import precision_note

    if args.threads is not None and args.threads < 1:
        raise CommandError(f"--threads must be at least 1, got {args.threads}")
    if args.backend == "torch" and args.threads:
        torch.set_num_threads(args.threads)
    backend = load_backend(args.backend, checkpoint, args.precision, args.device, args.threads)
    note = precision_note(backend.device, args.precision) if args.backend == "torch" else None
    if note:
        print(f"note: {note}", file=sys.stderr)
    apply_logit_adjustment(backend, args)
    return backend


def image_reading(args: argparse.Namespace, max_pixels: int | None = None):
    """The `ImageReading` the flags ask for."""
    from egtr.data.images import ImageReading

    return ImageReading(exif=args.exif, conversion=args.image_conversion, max_pixels=max_pixels)


def inference_settings(model, args: argparse.Namespace) -> dict:
    """The options as recorded in a report's settings (`model`: anything with the model's `config`)."""
    return {
        "logit_adjustment": model.config.logit_adjustment,
        "logit_adj_tau": model.config.logit_adj_tau if model.config.logit_adjustment else None,
        "exif_orientation": args.exif,
        "image_conversion": args.image_conversion,
    }
