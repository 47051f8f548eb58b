"""`egtr data check|stats|synth`: validate a dataset, print its statistics, generate the synthetic world."""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

from egtr.cli.errors import CommandError

SPLITS = ("train", "val", "test")


def add_parser(subparsers: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "data",
        parents=parents,
        help="check, describe and generate datasets",
        description="Check a dataset of any supported layout, print its statistics, or generate the "
        "synthetic scene-graph world as a custom dataset.",
    )
    actions = parser.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    _add_check(actions, parents)
    _add_stats(actions, parents)
    _add_synth(actions, parents)


def _add_check(actions: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    check = actions.add_parser(
        "check",
        parents=parents,
        help="validate a dataset and list every problem",
        description="Validate a dataset (COCO/RelTR, SGB-HDF5 or Open Images layout): print a summary and "
        "every problem with its file, image id and field. Exit code 0: clean; 1: problems found; "
        "2: not a dataset.",
    )
    check.add_argument("root", metavar="DIR", help="dataset directory")
    check.add_argument(
        "--split",
        action="append",
        choices=SPLITS,
        help="split to check, repeatable (default: every split present)",
    )
    check.add_argument("--json", action="store_true", help="print the report as JSON (default: off)")
    check.add_argument("--no-images", action="store_true", help="do not open the image files (default: off)")
    check.add_argument(
        "--decode",
        action="store_true",
        help="decode every image fully: finds truncated files, slower (default: off)",
    )
    check.add_argument(
        "--box-tolerance",
        type=float,
        default=1.0,
        help="pixels a box may reach past the image border (default: %(default)s)",
    )
    check.add_argument(
        "--max-listed",
        type=int,
        default=20,
        help="problems listed per kind in the text output (default: %(default)s)",
    )
    check.set_defaults(func=run_check)


def _add_stats(actions: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    stats = actions.add_parser(
        "stats",
        parents=parents,
        help="print predicate frequencies and triplet statistics",
        description="Print a split's predicate and class counts and its most frequent triplets (the "
        "statistics behind the frequency bias and mean recall).",
    )
    stats.add_argument("root", metavar="DIR", help="dataset directory")
    stats.add_argument(
        "--split", default="train", choices=SPLITS, help="split to count (default: %(default)s)"
    )
    stats.add_argument(
        "--top",
        type=int,
        default=10,
        help="how many of the most frequent triplets to list (default: %(default)s)",
    )
    stats.add_argument("--json", action="store_true", help="print the statistics as JSON (default: off)")
    stats.add_argument(
        "--out",
        metavar="OUT",
        type=Path,
        help="also write OUT/statistics.json and OUT/fg_matrix.npy (default: no files)",
    )
    stats.set_defaults(func=run_stats)


def _add_synth(actions: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    synth = actions.add_parser(
        "synth",
        parents=parents,
        help="write the synthetic scene-graph world as a custom dataset",
        description="Generate images of the seeded synthetic world (coloured shapes, geometric "
        "predicates) and write them with train/val/test splits in the COCO/RelTR layout.",
    )
    synth.add_argument("--out", metavar="OUT", type=Path, required=True, help="output directory (required)")
    synth.add_argument(
        "--images", type=int, required=True, help="number of images, all splits together (required)"
    )
    synth.add_argument("--seed", type=int, default=0, help="world seed (default: %(default)s)")
    synth.add_argument(
        "--size",
        type=int,
        nargs=2,
        default=(192, 192),
        metavar=("H", "W"),
        help="image height and width (default: 192 192)",
    )
    synth.add_argument(
        "--min-objects", type=int, default=2, help="fewest objects per image (default: %(default)s)"
    )
    synth.add_argument(
        "--max-objects", type=int, default=6, help="most objects per image (default: %(default)s)"
    )
    synth.add_argument(
        "--val-fraction", type=float, default=0.1, help="share of images in val (default: %(default)s)"
    )
    synth.add_argument(
        "--test-fraction", type=float, default=0.1, help="share of images in test (default: %(default)s)"
    )
    synth.add_argument("--json", action="store_true", help="print the summary as JSON (default: off)")
    synth.set_defaults(func=run_synth)


def _count_table(title: str, splits: list, attribute: str) -> list[str]:
    names = list(getattr(splits[0], attribute)) if splits else []
    width = max([len(title), *(len(name) for name in names)])
    lines = [f"  {title:<{width}}  " + "  ".join(f"{s.split:>8}" for s in splits)]
    for name in names:
        counts = "  ".join(f"{getattr(s, attribute).get(name, 0):>8}" for s in splits)
        lines.append(f"  {name:<{width}}  {counts}")
    return lines


def _check_text(report, max_listed: int) -> str:
    lines = [f"dataset {report.root} (layout {report.layout})"]
    lines.append(f"  {'split':<6} {'images':>8} {'boxes':>9} {'relations':>10} {'no-relation images':>19}")
    for s in report.splits:
        if not s.readable:
            lines.append(f"  {s.split:<6} unreadable (see problems)")
            continue
        lines.append(
            f"  {s.split:<6} {s.images:>8} {s.boxes:>9} {s.relations:>10} {s.images_without_relations:>19}"
        )
    readable = [s for s in report.splits if s.readable]
    lines += _count_table("classes", readable, "class_counts")
    lines += _count_table("predicates", readable, "predicate_counts")
    kinds = Counter(problem.kind for problem in report.problems)
    lines.append(
        f"problems: {len(report.problems)}" + "".join(f", {k} {n}" for k, n in sorted(kinds.items()))
    )
    listed = Counter()
    for problem in report.problems:
        listed[problem.kind] += 1
        if listed[problem.kind] <= max_listed:
            lines.append(f"  {problem}")
    for kind, count in sorted(kinds.items()):
        if count > max_listed:
            lines.append(f"  ... and {count - max_listed} more {kind} (use --json for all)")
    return "\n".join(lines)


def run_check(args: argparse.Namespace) -> int:
    from egtr.data.check import check_dataset
    from egtr.data.problems import NotADatasetError

    try:
        report = check_dataset(
            args.root,
            args.split,
            images=not args.no_images,
            decode=args.decode,
            box_tolerance=args.box_tolerance,
        )
    except NotADatasetError as error:
        raise CommandError(str(error)) from error
    if args.json:
        print(json.dumps(report.to_dict(), indent=1))
    else:
        print(_check_text(report, args.max_listed))
    return 1 if report.problems else 0


def _stats_text(result: dict) -> str:
    lines = [
        f"dataset {result['root']} (layout {result['layout']}), split {result['split']}: "
        f"{result['images']} images, {result['objects']} objects, {result['relations']} relations",
        "predicates (count, share), most frequent first:",
    ]
    ranked = sorted(result["predicate_counts"].items(), key=lambda item: -item[1])
    width = max((len(name) for name, _ in ranked), default=0)
    for name, count in ranked:
        lines.append(f"  {name:<{width}} {count:>9} {result['predicate_frequencies'][name]:>8.2%}")
    lines.append(f"top {len(result['top_triplets'])} triplets:")
    for t in result["top_triplets"]:
        lines.append(f"  {t['count']:>9}  {t['subject']} - {t['predicate']} - {t['object']}")
    return "\n".join(lines)


def run_stats(args: argparse.Namespace) -> int:
    import numpy as np

    from egtr.data import NotADatasetError, load_dataset
    from egtr.data.statistics import describe_split, fg_matrix

    try:
        split = load_dataset(args.root, args.split)
    except NotADatasetError as error:
        raise CommandError(str(error)) from error
    result = describe_split(split, args.top)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "statistics.json").write_text(json.dumps(result, indent=1))
        np.save(args.out / "fg_matrix.npy", fg_matrix(split.records, split.num_classes, split.num_predicates))
    print(json.dumps(result, indent=1) if args.json else _stats_text(result))
    return 0


def run_synth(args: argparse.Namespace) -> int:
    from egtr.data.synthetic import SyntheticWorld, write_synthetic_dataset

    if args.images < 1:
        raise CommandError(f"--images must be at least 1, got {args.images}")
    options = {"min_objects": args.min_objects, "max_objects": args.max_objects}
    sizes = write_synthetic_dataset(
        args.out,
        args.images,
        seed=args.seed,
        image_size=tuple(args.size),
        val_fraction=args.val_fraction,
        test_fraction=args.test_fraction,
        **options,
    )
    world = SyntheticWorld(seed=args.seed, image_size=tuple(args.size), **options)
    summary = {
        "out": str(args.out),
        "seed": args.seed,
        "image_size": list(args.size),
        "splits": sizes,
        "class_names": world.class_names,
        "predicate_names": world.predicate_names,
    }
    if args.json:
        print(json.dumps(summary, indent=1))
    else:
        counts = ", ".join(f"{split} {count}" for split, count in sizes.items())
        print(f"wrote {args.images} synthetic images ({counts}) to {args.out}")
    return 0
