"""`egtr train`: one phase or the whole recipe; every preset value overridable by file and by flag."""

from __future__ import annotations

import argparse
import dataclasses
import json
import types
import typing
from pathlib import Path
from typing import Any

from egtr.cli.errors import CommandError
from egtr.devices import TRAINING_DEVICES
from egtr.engine.settings import DATASETS, LR_DROP_AT, LR_DROP_FACTOR, PHASES, TrainSettings, merge, preset

HELP = {
    "data": "dataset directory in any supported layout (COCO/RelTR, SGB HDF5, Open Images)",
    "out": "output directory: checkpoints/, logs/, model.safetensors, report/",
    "init_from": "model to start from: a detector (egtr and detector_finetune phases) or EGTR model "
    "(finetune phase)",
    "backbone_weights": "ImageNet ResNet weights saved by torchvision or timm (detector phase)",
    "resume": "continue from OUT/checkpoints/last.ckpt when it exists",
    "lr": "learning rate of the detector (transformer, heads)",
    "lr_backbone": "learning rate of parameters named backbone / reference_points / sampling_offsets",
    "lr_initialized": "learning rate of the newly initialized relation head",
    "weight_decay": "AdamW weight decay",
    "gradient_clip": "gradient norm clipping (0 = off)",
    "batch_size": "images per device and step",
    "accumulate": "gradient accumulation steps, when --effective-batch is not set",
    "effective_batch": "images per optimizer step; sets accumulate = this / (batch_size x devices x nodes), "
    "which must divide exactly",
    "allow_approximate_batch": "round an accumulation that cannot reach --effective-batch exactly instead of "
    "stopping with an error",
    "max_epochs": "maximum epochs",
    "max_steps": "maximum optimizer steps (-1 = no limit)",
    "max_minutes": "stop after this many minutes of training",
    "patience": "early stopping patience in validations without a better validation loss",
    "lr_schedule": "constant (official), cosine: every rate decays as (1 + cos(pi x share of the budget "
    "spent)) / 2, the budget being --max-steps, --max-minutes or the epochs, or step: every rate times "
    f"{LR_DROP_FACTOR:g} once {LR_DROP_AT:g} of the budget is spent",
    "warmup_steps": "linear warm-up of every rate over this many optimizer steps (0 = none)",
    "adamw_implementation": "AdamW kernel: default (PyTorch's choice), for-loop, foreach or fused (the "
    "same update up to rounding; fused needs --precision 32-true when clipping)",
    "precision": "32-true, 16-mixed or bf16-mixed (deformable attention always runs in fp32)",
    "seed": "random seed (Lightning seed_everything, workers included)",
    "accelerator": f"{TRAINING_DEVICES} (Lightning's accelerator; gpu is cuda)",
    "devices": "devices per node (a number or auto)",
    "num_nodes": "number of nodes for multi-node DDP",
    "strategy": "Lightning strategy: auto, ddp, ddp_spawn, ...",
    "num_workers": "data loader worker processes",
    "train_scales": "training shorter-side sizes (random choice)",
    "train_mid_scales": "intermediate resize sizes of the second augmentation branch (empty: off)",
    "train_crop": "RandomSizeCrop [min max] side in the second augmentation branch (empty: no crop; "
    "official: 384 600 for the detector phases)",
    "train_max_size": "training longer-side limit",
    "flip_prob": "horizontal flip probability",
    "eval_size": "evaluation shorter side",
    "eval_max_size": "evaluation longer-side limit",
    "protocol": "evaluation protocol: vg or oi",
    "metrics_every": "compute R@K / mR@K / AP50 every N validations (0 = loss only)",
    "val_check_interval": "validate every N steps (integer > 1) or fraction of an epoch",
    "log_every": "log every N steps",
    "max_val_images": "use at most this many validation images",
    "filter_multiple_rels": "keep one random predicate per pair at every access (Open Images official)",
    "synthetic_images": "synthetic world: training images (without --data)",
    "synthetic_val_images": "synthetic world: validation and test images",
    "synthetic_size": "synthetic world: image side in pixels",
    "synthetic_seed": "synthetic world: seed",
}
FIXED = ("phase", "dataset", "model")  # set by --phase / --dataset / --model


def _converter(annotation: Any):
    """argparse type for a dataclass field annotation (str annotations from __future__ are resolved)."""
    options = typing.get_args(annotation) if isinstance(annotation, types.UnionType) else (annotation,)
    order = {int: 0, float: 1}  # "100" is the integer 100, not 100.0
    options = sorted(
        (option for option in options if option is not type(None)), key=lambda o: order.get(o, 2)
    )

    def convert(text: str) -> Any:
        for option in options:
            if option is str:
                continue
            try:
                return option(text)
            except ValueError:
                pass
        if str in options:
            return text
        raise argparse.ArgumentTypeError(f"{text!r} is not a {' or '.join(o.__name__ for o in options)}")

    return convert


def add_setting_flags(parser: argparse.ArgumentParser) -> None:
    hints = typing.get_type_hints(TrainSettings)
    reference = preset("visual_genome", "egtr")
    group = parser.add_argument_group("settings (defaults: the preset; shown: Visual Genome, egtr phase)")
    for field in dataclasses.fields(TrainSettings):
        if field.name in FIXED:
            continue
        flag = "--" + field.name.replace("_", "-")
        default = getattr(reference, field.name)
        help_text = f"{HELP.get(field.name, field.name)} (default: {default})"
        annotation = hints[field.name]
        if annotation is bool:
            group.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=help_text)
        elif typing.get_origin(annotation) is list:
            group.add_argument(flag, nargs="*", type=int, default=None, help=help_text)
        else:
            group.add_argument(flag, type=_converter(annotation), default=None, help=help_text)


def add_parser(subparsers, parents) -> None:
    parser = subparsers.add_parser(
        "train",
        parents=parents,
        help="train a phase or the full recipe",
        description="Train EGTR. Phases: detector (Deformable DETR pre-training), detector_finetune (the "
        "same at x0.1 rates), egtr (relation head from the pre-trained detector), finetune (all rates x0.1). "
        "Settings come from the preset of --dataset "
        "and --phase, then --settings FILE (JSON), then flags. The effective settings are saved next to the "
        "checkpoints (OUT/train_settings.json).",
    )
    parser.add_argument(
        "--dataset", default="visual_genome", choices=DATASETS, help="preset family (default: visual_genome)"
    )
    parser.add_argument("--phase", default="egtr", choices=PHASES, help="phase to train (default: egtr)")
    parser.add_argument(
        "--recipe",
        choices=["full"],
        help="full: detector -> detector_finetune -> egtr -> finetune into OUT/<phase>/, chained "
        "(default: one phase)",
    )
    parser.add_argument("--settings", metavar="FILE", help="JSON file of settings overrides (default: none)")
    parser.add_argument(
        "--model",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="EGTRConfig override, repeatable, e.g. --model use_connectivity=false (default: none)",
    )
    parser.add_argument(
        "--show-settings",
        action="store_true",
        help="print the effective settings as JSON and exit (default: off)",
    )
    add_setting_flags(parser)
    parser.set_defaults(func=run)


def parse_model_overrides(items: list[str]) -> dict[str, Any]:
    overrides = {}
    for item in items:
        key, separator, value = item.partition("=")
        if not separator:
            raise CommandError(f"--model {item!r}: expected KEY=VALUE")
        try:
            overrides[key] = json.loads(value)
        except json.JSONDecodeError:
            overrides[key] = value
    return overrides


def collect_overrides(args: argparse.Namespace) -> dict[str, Any]:
    overrides: dict[str, Any] = {}
    if args.settings:
        try:
            overrides = json.loads(Path(args.settings).read_text())
        except (OSError, json.JSONDecodeError) as error:
            raise CommandError(f"--settings {args.settings}: {error}") from error
        if not isinstance(overrides, dict):
            raise CommandError(f"--settings {args.settings}: expected a JSON object")
        for key in ("phase", "dataset"):
            if key in overrides:
                raise CommandError(f"--settings {args.settings}: set {key} with --{key}, not in the file")
    for field in dataclasses.fields(TrainSettings):
        value = getattr(args, field.name, None)
        if field.name not in FIXED and value is not None:
            overrides[field.name] = value
    model = {**overrides.get("model", {}), **parse_model_overrides(args.model)}
    if model:
        overrides["model"] = model
    return overrides


def run(args: argparse.Namespace) -> int:
    from egtr.engine.run import device_count, run_phase, run_recipe

    overrides = collect_overrides(args)
    phases = list(PHASES) if args.recipe == "full" else [args.phase]
    try:
        effective = [merge(preset(args.dataset, phase), overrides) for phase in phases]
    except (ValueError, TypeError) as error:
        raise CommandError(str(error)) from error
    for settings in effective:  # every phase's batch arithmetic, before hours of training
        try:
            settings.accumulation(device_count(settings))
        except ValueError as error:
            raise CommandError(f"phase {settings.phase}: {error}") from error
    if args.show_settings:
        print(
            json.dumps(
                [s.to_dict() for s in effective] if len(effective) > 1 else effective[0].to_dict(), indent=2
            )
        )
        return 0
    if args.recipe == "full":
        out = overrides.pop("out", preset(args.dataset, "egtr").out)
        results = run_recipe(args.dataset, phases, out, overrides)
    else:
        results = [run_phase(effective[0])]
    for result in results:
        headline = {
            k: round(v, 4)
            for k, v in result.metrics.items()
            if k in ("AP50", "R@20", "R@50", "R@100", "mR@50", "score_wtd")
        }
        print(f"{result.out}: model {result.model_path}; test {headline}")
    return 0
