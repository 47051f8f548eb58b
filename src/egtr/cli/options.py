"""Flags shared by several commands, each declared once, and what they build: a model, a backend, a
predictor.

A command adds the groups it needs (`add_checkpoint_argument`, `add_names_argument`,
`add_device_argument`, `add_size_arguments`, `add_backend_arguments`, `add_batching_arguments`,
`add_selection_arguments`, `add_reading_arguments`, `add_logit_adjustment_arguments`, `add_model_arguments`,
`add_process_arguments`) and builds what they describe with `build_backend`, `build_predictor`,
`model_from_args` and `build_processes`, so that
`predict`, `serve` and `evaluate` run one export at one image size with one set of options. Parsing imports
no torch: the choices come from torch-free modules (egtr.precision, egtr.export.formats, egtr.devices,
egtr.sizes, egtr.inference.selection).

Defaults follow the official evaluation (the official `evaluate_egtr.py`, architecture.md §10): no logit
adjustment whatever the checkpoint's config says (its --logit_adjustment / --logit_adj_tau override the
config), pixels read as `Image.open(path).convert("RGB")` does, the 800 / 1333 resize unless an export
stores another.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import fields
from pathlib import Path

from egtr.cli.errors import CommandError
from egtr.devices import INFERENCE_DEVICES, TRAINING_DEVICES
from egtr.export.formats import BACKENDS, DEFAULT_BACKEND
from egtr.inference.selection import TripletOptions
from egtr.precision import PRECISIONS
from egtr.sizes import EVAL_MAX_SIZE, EVAL_SIZE

DEMO_OUT = Path("egtr-output/demo")  # where `egtr demo` writes its report and model
DEMO_MODEL = DEMO_OUT / "model.safetensors"  # the model commands run when no --checkpoint is given
DEFAULT_TAU = 0.3  # the official evaluation's --logit_adj_tau default
MODEL_FILES = "any model file or directory egtr.load_model accepts"
EXPORT_FILES = "a folder written by `egtr export` or its model file"


# --------------------------------------------------------------------------------------------- model
def add_checkpoint_argument(
    parser: argparse._ActionsContainer,
    *,
    backends: bool = False,
    demo_default: bool = False,
    default_text: str | None = "none",
    required: bool = False,
) -> None:
    """--checkpoint: a model file or folder (`backends`: also an export, for --backend onnxruntime /
    openvino); `demo_default`: the model `egtr demo` trains when not given (see `checkpoint_path`);
    `default_text` None: no default is shown (required, or one of a group)."""
    what = f"with --backend torch: {MODEL_FILES}; with onnxruntime / openvino: {EXPORT_FILES}"
    what = what if backends else MODEL_FILES
    if demo_default:
        default_text = f"{DEMO_MODEL} below the current folder, the model `egtr demo` trains"
    if default_text is not None and not required:
        what += f" (default: {default_text})"
    parser.add_argument("--checkpoint", metavar="PATH", required=required, help=what)


def checkpoint_path(args: argparse.Namespace) -> Path:
    """--checkpoint, or the demo's model when there is one; CommandError otherwise."""
    if args.checkpoint:
        return Path(args.checkpoint)
    if DEMO_MODEL.is_file():
        return DEMO_MODEL
    raise CommandError(
        f"no --checkpoint given and no demo model at {DEMO_MODEL}: run `egtr demo` to train one, or pass "
        "--checkpoint PATH"
    )


def add_model_arguments(parser: argparse.ArgumentParser, default_preset: str = "visual_genome") -> None:
    """A model to build or load: --checkpoint, or a --preset / --config architecture; --backbone-weights."""
    from egtr.config import EGTRConfig

    group = parser.add_argument_group("model")
    add_checkpoint_argument(group)
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
    """Build or load the EGTR model that `add_model_arguments`' options describe."""
    from egtr.checkpoints import load_backbone_file, load_model
    from egtr.config import EGTRConfig
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


def add_names_argument(parser: argparse._ActionsContainer, purpose: str = "") -> None:
    """--names: class and predicate names (`purpose`, e.g. " to store in the export", ends the first part)."""
    parser.add_argument(
        "--names",
        metavar="FILE_OR_DIR",
        help=f"class/predicate names{purpose}: a JSON file ({{objects, predicates}}, {{obj, rel}}, ...) or a "
        "dataset folder (default: the model's names; Visual Genome lists for 150/50 models; else "
        "placeholders)",
    )


# --------------------------------------------------------------------------------------------- device
def add_device_argument(
    parser: argparse._ActionsContainer,
    *,
    training: bool = False,
    default: str | None = "auto",
    default_text=None,
) -> None:
    """--device, in the inference vocabulary (a torch device) or the training one (Lightning's accelerator);
    egtr.devices resolves both."""
    names = TRAINING_DEVICES if training else INFERENCE_DEVICES
    parser.add_argument(
        "--device",
        default=default,
        help=f"{names} (default: {default_text or default})",
    )


# --------------------------------------------------------------------------------------------- sizes
def add_size_arguments(
    parser: argparse._ActionsContainer, default_text: tuple[str, str] | None = None
) -> None:
    """--size / --max-size of the evaluation resize; unset, `image_sizes` takes an export's stored sizes, else
    the official 800 / 1333 (`default_text`: how a command that picks other defaults says so)."""
    size_text, max_text = default_text or (
        f"what an export stores, else {EVAL_SIZE}",
        f"what an export stores, else {EVAL_MAX_SIZE}",
    )
    parser.add_argument("--size", type=int, metavar="N", help=f"shorter image side (default: {size_text})")
    parser.add_argument(
        "--max-size", type=int, metavar="N", help=f"longest image side cap (default: {max_text})"
    )


def image_sizes(args: argparse.Namespace, backend=None) -> tuple[int, int | None]:
    """--size / --max-size, defaulting to what `backend`'s export stores, else the official 800 / 1333."""
    stored = getattr(backend, "metadata", None)
    size = args.size or (stored.size if stored else EVAL_SIZE)
    max_size = args.max_size or (stored.max_size if stored else EVAL_MAX_SIZE)  # None: no cap
    for flag, value in (("--size", size), ("--max-size", max_size)):
        if value is not None and value < 1:
            raise CommandError(f"{flag} must be at least 1, got {value}")
    if max_size is not None and max_size < size:
        raise CommandError(f"--max-size ({max_size}) must be at least --size ({size})")
    return size, max_size


# --------------------------------------------------------------------------------------------- backend
def add_backend_arguments(parser: argparse._ActionsContainer) -> None:
    """--backend, --precision, --threads: what runs the network, in which precision, on how many threads."""
    parser.add_argument(
        "--backend",
        default=DEFAULT_BACKEND,
        choices=BACKENDS,
        help="what runs the network: PyTorch, or an exported model in ONNX Runtime or OpenVINO (CPU); "
        f"the post-processing and the JSON are the same for all (default: {DEFAULT_BACKEND})",
    )
    add_precision_argument(parser)
    add_threads_argument(parser)


def add_precision_argument(parser: argparse._ActionsContainer, exports: bool = True) -> None:
    """--precision; `exports`: unset, an export runs in the precision it stores (None), else fp32."""
    shown = f"an export's own, else {PRECISIONS[0]}" if exports else PRECISIONS[0]
    parser.add_argument(
        "--precision",
        default=None if exports else PRECISIONS[0],
        choices=PRECISIONS,
        help="fp32 (exact) or bf16/fp16: autocast with torch (a note says when the CPU emulates it), "
        "OpenVINO's inference precision where the CPU has it natively; onnxruntime: fp32 only; an INT8 "
        f"export computes its float parts in it (default: {shown})",
    )


def add_threads_argument(parser: argparse._ActionsContainer) -> None:
    parser.add_argument(
        "--threads",
        type=int,
        metavar="N",
        help="threads of the runtime that runs the network (default: the runtime's own choice)",
    )


def set_threads(args: argparse.Namespace) -> None:
    """Check --threads and give torch that many intra-op threads (other runtimes take it when loaded)."""
    import torch

    if args.threads is not None and args.threads < 1:
        raise CommandError(f"--threads must be at least 1, got {args.threads}")
    if args.threads:
        torch.set_num_threads(args.threads)


def build_backend(args: argparse.Namespace, checkpoint, device: str | None = None):
    """The runtime backend --backend names for `checkpoint` on `device` (default: --device), with the logit
    adjustment of the flags (a note on stderr when the CPU emulates --precision)."""
    from egtr.export.exporter import load_backend
    from egtr.precision import precision_note

    set_threads(args)
    backend = load_backend(args.backend, checkpoint, args.precision, device or args.device, args.threads)
    note = precision_note(backend.device, backend.precision) if args.backend == "torch" else None
    if note:
        print(f"note: {note}", file=sys.stderr)
    apply_logit_adjustment(backend, args)
    return backend


# --------------------------------------------------------------------------------------------- processes
STRATEGIES = ("auto", "ddp")


def add_process_arguments(parser: argparse._ActionsContainer) -> None:
    """--devices, --num-nodes, --strategy: how many processes share the work (egtr.engine.prediction)."""
    parser.add_argument(
        "--devices",
        type=int,
        metavar="N",
        default=1,
        help="processes on this machine, each predicting its own part of the images: one per GPU when the "
        "run uses CUDA (GPUs 0..N-1 of CUDA_VISIBLE_DEVICES), else N CPU processes (default: 1)",
    )
    parser.add_argument(
        "--num-nodes",
        type=int,
        metavar="M",
        default=1,
        help="machines taking part, each running the same command with NODE_RANK (0..M-1), MASTER_ADDR and "
        "MASTER_PORT set, the output folder on a shared file system (default: 1)",
    )
    parser.add_argument(
        "--strategy",
        default=STRATEGIES[0],
        choices=STRATEGIES,
        help="ddp: Lightning's DDP (gloo on CPUs, NCCL on GPUs; processes started by re-running the command, "
        "or by torchrun / SLURM); auto: ddp when there is more than one process (default: %(default)s)",
    )


def build_processes(args: argparse.Namespace):
    """The `egtr.engine.prediction.Processes` the flags ask for: the accelerator from --device and --backend
    (exported models run on CPUs), --devices / --num-nodes / --strategy, --threads."""
    from egtr.devices import resolve_device
    from egtr.engine.prediction import Processes
    from egtr.export.formats import runtime

    for flag, value in (("--devices", args.devices), ("--num-nodes", args.num_nodes)):
        if value < 1:
            raise CommandError(f"{flag} must be at least 1, got {value}")
    if runtime(args.backend).cpu_only:
        return Processes("cpu", args.devices, args.num_nodes, args.strategy, args.threads)
    try:
        device = resolve_device(args.device)
    except ValueError as error:
        raise CommandError(str(error)) from error
    if device.type != "cuda":
        return Processes("cpu", args.devices, args.num_nodes, args.strategy, args.threads)
    devices = args.devices
    if device.index is not None:
        if args.devices != 1:
            raise CommandError(
                f"--device {args.device} names one GPU; with --devices {args.devices} the run takes GPUs "
                "0..N-1 (choose them with CUDA_VISIBLE_DEVICES) and --device cuda"
            )
        devices = [device.index]
    return Processes("cuda", devices, args.num_nodes, args.strategy, args.threads)


# --------------------------------------------------------------------------------------------- batching
def add_batching_arguments(parser: argparse._ActionsContainer) -> None:
    """--batch-size, --pad-mixed-sizes and --workers of the predictor's loop."""
    parser.add_argument(
        "--batch-size",
        type=int,
        metavar="N",
        default=1,
        help="images per forward pass; only images of the same resized size share a batch, so results "
        "equal unbatched ones (default: 1)",
    )
    parser.add_argument(
        "--pad-mixed-sizes",
        action="store_true",
        help="let images of different sizes share a batch, padded to the largest: faster on mixed folders, "
        "but padding changes the outputs slightly (default: off)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        metavar="N",
        default=1,
        help="threads reading images ahead of the model; 0 reads them in the model's thread (default: 1)",
    )


# --------------------------------------------------------------------------------------------- selection
def add_selection_arguments(parser: argparse._ActionsContainer) -> None:
    """One flag per field of `TripletOptions` (egtr.inference.selection), made from the field's metadata."""
    for spec in fields(TripletOptions):
        metadata, flag = spec.metadata, "--" + spec.name.replace("_", "-")
        default = f"{spec.default:g}" if isinstance(spec.default, float) else str(spec.default)
        shown = metadata["default_text"] or ("off" if spec.default is None else default)
        if metadata["negation"]:  # a switch that is on by default: a --no- flag turns it off
            parser.add_argument(
                "--no-" + flag[2:],
                dest=spec.name,
                action="store_false",
                help=f"{metadata['negation']} (default: {shown})",
            )
        elif "choices" in metadata:
            parser.add_argument(
                flag,
                default=spec.default,
                choices=metadata["choices"],
                help=f"{metadata['help']} (default: {shown})",
            )
        else:
            kind = float if "float" in str(spec.type) else int
            parser.add_argument(
                flag,
                type=kind,
                metavar=metadata["metavar"],
                default=spec.default,
                help=f"{metadata['help']} (default: {shown})",
            )


def selection_options(args: argparse.Namespace) -> dict:
    """The `TripletOptions` fields the command's flags set (those it did not declare keep their defaults);
    CommandError naming the flag for a bad value."""
    from egtr.inference.selection import check_option

    chosen = {}
    for spec in fields(TripletOptions):
        if hasattr(args, spec.name):
            chosen[spec.name] = getattr(args, spec.name)
            try:
                check_option("--" + spec.name.replace("_", "-"), chosen[spec.name], spec.metadata)
            except ValueError as error:
                raise CommandError(str(error)) from error
    return chosen


# --------------------------------------------------------------------------------------------- reading
def add_reading_arguments(parser: argparse._ActionsContainer) -> None:
    """--exif and --image-conversion: how image files are read (egtr.data.images)."""
    parser.add_argument(
        "--exif",
        action="store_true",
        help="apply the EXIF orientation of image files (default: off, pixels as stored, as the official "
        "loader)",
    )
    parser.add_argument(
        "--image-conversion",
        default="official",
        choices=("official", "composite"),
        help="official: PIL's convert('RGB') as the official loader (alpha dropped, 16-bit clipped); "
        "composite: transparency on white, high bit depths scaled to 8 bits (default: %(default)s)",
    )


def add_max_pixels_argument(parser: argparse._ActionsContainer, default: int | None = None) -> None:
    text = "PIL's decompression-bomb limit, about 89M" if default is None else "%(default)s"
    parser.add_argument(
        "--max-pixels",
        type=int,
        metavar="N",
        default=default,
        help=f"refuse images with more pixels (width x height), before decoding them (default: {text})",
    )


def allow_pixels(max_pixels: int | None) -> None:
    """Raise PIL's own decompression-bomb guard to `max_pixels`, so that it does not stop a raised limit."""
    from PIL import Image

    if max_pixels and max_pixels > (Image.MAX_IMAGE_PIXELS or 0):
        Image.MAX_IMAGE_PIXELS = max_pixels


# --------------------------------------------------------------------------------------------- scores
def add_logit_adjustment_arguments(parser: argparse._ActionsContainer) -> None:
    parser.add_argument(
        "--logit-adjustment",
        action="store_true",
        help="post-hoc logit adjustment of the predicate scores, rel_logits - tau * log(predicate prior), "
        "as the official evaluation's --logit_adjustment (the paper's 'EGTR + logit adjustment' row); "
        "it overrides the checkpoint's config (default: off, whatever the config says, as officially)",
    )
    parser.add_argument(
        "--logit-adj-tau",
        type=float,
        metavar="TAU",
        help=f"tau of --logit-adjustment (default: {DEFAULT_TAU}, as officially)",
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


def image_reading(args: argparse.Namespace, max_pixels: int | None = None):
    """The `ImageReading` the flags ask for."""
    from egtr.data.images import ImageReading

    return ImageReading(exif=args.exif, conversion=args.image_conversion, max_pixels=max_pixels)


def inference_settings(predictor, args: argparse.Namespace) -> dict:
    """The options as recorded in a report's settings (`predictor`: a SceneGraphPredictor)."""
    quantization = predictor.backend.quantization  # an INT8 export's settings (egtr.export.int8)
    return {
        "int8": None if quantization is None else quantization["tool"],
        "logit_adjustment": predictor.config.logit_adjustment,
        "logit_adj_tau": predictor.config.logit_adj_tau if predictor.config.logit_adjustment else None,
        "exif_orientation": args.exif,
        "image_conversion": args.image_conversion,
    }


# --------------------------------------------------------------------------------------------- predictor
def build_predictor(args: argparse.Namespace, backend, batch_size: int | None = None, **options):
    """The predictor of `backend` with every option the command's flags set: names, sizes (an export's
    stored ones unless --size / --max-size), batching, selection, reading; `batch_size` overrides
    --batch-size (the server's --max-batch), `options` are further predictor arguments."""
    from egtr.inference.predictor import SceneGraphPredictor

    max_pixels = getattr(args, "max_pixels", None)  # flags a command does not declare keep their defaults
    allow_pixels(max_pixels)
    size, max_size = image_sizes(args, backend)
    batch_size = batch_size or getattr(args, "batch_size", 1)
    workers = getattr(args, "workers", 1)
    for flag, value, least in (("--batch-size", batch_size, 1), ("--workers", workers, 0)):
        if value < least:
            raise CommandError(f"{flag} must be at least {least}, got {value}")
    try:
        return SceneGraphPredictor(
            backend,
            names=getattr(args, "names", None),
            size=size,
            max_size=max_size,
            batch_size=batch_size,
            pad_mixed_sizes=getattr(args, "pad_mixed_sizes", False),
            workers=workers,
            max_pixels=max_pixels,
            exif=args.exif,
            conversion=args.image_conversion,
            **selection_options(args),
            **options,
        )
    except ValueError as error:
        raise CommandError(str(error)) from error
