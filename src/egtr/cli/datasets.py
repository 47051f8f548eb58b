"""Dataset flags and helpers shared by `egtr evaluate` and `egtr analyze`: split, protocol, loading."""

from __future__ import annotations

import argparse
from pathlib import Path

from egtr.cli.errors import CommandError

SPLITS = ("train", "val", "test")
PROTOCOLS = ("auto", "vg", "oi")


def add_split_argument(parser: argparse._ActionsContainer, verb: str) -> None:
    """--split (`verb`: what the command does with it, e.g. "evaluate")."""
    parser.add_argument("--split", default="test", choices=SPLITS, help=f"split to {verb} (default: test)")


def add_protocol_argument(parser: argparse._ActionsContainer) -> None:
    parser.add_argument(
        "--protocol",
        default="auto",
        choices=PROTOCOLS,
        help="vg (Visual Genome recall) or oi (Open Images); auto: oi for the open-images layout, else vg "
        "(default: auto)",
    )


def resolve_protocol(choice: str, split) -> str:
    """The evaluation protocol: `choice`, or for "auto" oi on the open-images layout and vg otherwise."""
    return choice if choice != "auto" else ("oi" if split.layout == "open-images" else "vg")


def load_split(root: Path, split: str):
    """The `split` of the dataset in `root` (any layout); CommandError when `root` holds none."""
    from egtr.data import NotADatasetError, load_dataset

    try:
        return load_dataset(root, split)
    except NotADatasetError as error:
        raise CommandError(str(error)) from error


def optional_split(root: Path, split: str):
    """The `split` of the dataset in `root`, or None when the dataset has no such split."""
    from egtr.data import NotADatasetError, load_dataset

    try:
        return load_dataset(root, split)
    except NotADatasetError:
        return None


def check_fits(config, split, checkpoint) -> None:
    """CommandError when the model's (`config`) classes or predicates do not fit the split's."""
    if (config.num_labels, config.num_rel_labels) != (split.num_classes, split.num_predicates):
        raise CommandError(
            f"{checkpoint}: the model has {config.num_labels} classes and {config.num_rel_labels} "
            f"predicates, the dataset {split.num_classes} and {split.num_predicates}"
        )
