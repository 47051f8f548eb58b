"""`egtr evaluate`: scene-graph metrics of a checkpoint, or of saved predictions, on a dataset split.

Writes OUT/metrics.json (every metric, per-predicate table, counts, settings) and OUT/metrics.md. The work
is done by `evaluate_predictions(split, predictions, ...)`, which any source of predictions can call.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

from egtr.cli.datasets import (
    SPLITS,
    add_protocol_argument,
    add_split_argument,
    check_fits,
    load_split,
    optional_split,
    resolve_protocol,
)
from egtr.cli.errors import CommandError
from egtr.cli.options import (
    add_backend_arguments,
    add_batching_arguments,
    add_checkpoint_argument,
    add_device_argument,
    add_logit_adjustment_arguments,
    add_reading_arguments,
    add_size_arguments,
    build_backend,
    build_predictor,
    inference_settings,
)

DEFAULT_OUT = Path("egtr-output/evaluate")


def add_parser(subparsers: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "evaluate",
        parents=parents,
        help="scene-graph metrics (R@K, mR@K, zR@K, OI wmAP, detection AP) of a model or of predictions",
        description=(
            "Evaluate a model checkpoint (--checkpoint) or saved predictions (--predictions, an "
            "`egtr.evaluation.write_predictions` .npz file) on a split of a dataset with the standard "
            "protocols: Visual Genome recall (R@K, mR@K, ngR@K, ngmR@K, zR@K, F1@K) or Open Images "
            "(micro R@50, wmAP_rel, wmAP_phr, score_wtd), plus COCO detection AP when the predictions "
            "carry detections. Exit code 1 when some split images had no prediction (they are evaluated "
            "as empty predictions)."
        ),
    )
    source = parser.add_mutually_exclusive_group(required=True)
    add_checkpoint_argument(source, backends=True, default_text=None)
    source.add_argument("--predictions", metavar="FILE", type=Path, help="saved predictions .npz")
    model = parser.add_argument_group("with --checkpoint")
    add_backend_arguments(model)
    add_size_arguments(model)
    add_batching_arguments(model)
    add_device_argument(model)
    add_logit_adjustment_arguments(model)
    add_reading_arguments(model)
    model.add_argument(
        "--save-predictions",
        metavar="FILE",
        type=Path,
        help="also write the predictions as .npz for later --predictions runs (default: no)",
    )
    parser.add_argument(
        "--data", metavar="DIR", type=Path, required=True, help="dataset directory (required)"
    )
    add_split_argument(parser, "evaluate")
    add_protocol_argument(parser)
    parser.add_argument(
        "--recall-k",
        type=int,
        nargs="+",
        default=[20, 50, 100],
        metavar="K",
        help="K values of the recalls (default: 20 50 100)",
    )
    parser.add_argument(
        "--zero-shot-split",
        default="train",
        choices=(*SPLITS, "none"),
        help="split whose triplets count as seen for zR@K (vg protocol); none disables zR@K; a dataset "
        "without this split gets no zR@K and a note (default: %(default)s)",
    )
    parser.add_argument(
        "--out",
        metavar="DIR",
        type=Path,
        default=DEFAULT_OUT,
        help="directory for metrics.json and metrics.md (default: %(default)s)",
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON (default: a summary)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    split = load_split(args.data, args.split)
    if args.checkpoint:
        return _evaluate_checkpoint(split, args)
    from egtr.evaluation import PredictionsFile

    predictions = PredictionsFile(args.predictions)
    if len(predictions) and predictions.num_predicates not in (0, split.num_predicates):
        raise CommandError(
            f"{args.predictions}: predictions have {predictions.num_predicates} predicates, "
            f"the dataset {split.num_predicates}"
        )
    settings = {"predictions": str(args.predictions)}
    return evaluate_predictions(split, predictions, args, settings)


def evaluate_predictions(
    split,
    predictions: Iterable[tuple[str, Mapping]],
    args: argparse.Namespace,
    settings: dict,
    from_model: bool = False,
) -> int:
    """Evaluate `predictions` on the loaded `split` with the options in `args` (protocol, recall_k,
    zero_shot_split, out, json), write the report and print it; returns the exit code. `from_model`: the
    predictions are a model's, so images without one are unreadable files (`count_unreadable`)."""
    from egtr import __version__
    from egtr.evaluation import evaluate_split, training_triplets, write_report
    from egtr.evaluation.split import count_unreadable

    protocol = resolve_protocol(args.protocol, split)
    seen_triplets, zero_shot_split = None, None
    if protocol == "vg" and args.zero_shot_split != "none":
        seen_split = optional_split(split.root, args.zero_shot_split)
        if seen_split is None:
            print(
                f"note: {split.root} has no {args.zero_shot_split} split: zR@K not computed", file=sys.stderr
            )
        else:
            seen_triplets, zero_shot_split = training_triplets(seen_split.records), args.zero_shot_split
    result = evaluate_split(
        split.records,
        predictions,
        protocol,
        num_classes=split.num_classes,
        num_predicates=split.num_predicates,
        predicate_names=split.predicate_names,
        recall_ks=args.recall_k,
        zero_shot_triplets=seen_triplets,
    )
    if from_model:
        count_unreadable(result)
    settings = {
        "protocol": protocol,
        "data": str(split.root),
        "layout": split.layout,
        "split": split.split,
        "dataset_options": split.options,
        **settings,
        "recall_k": list(args.recall_k),
        "zero_shot_split": zero_shot_split,
        "iou_threshold": 0.5,
        "egtr_version": __version__,
    }
    json_path, markdown_path = write_report(args.out, result.metrics, settings, split.predicate_names)
    report = json.loads(json_path.read_text())
    print(json.dumps(report, indent=2) if args.json else _summary(report, json_path, markdown_path))
    if result.missing_image_ids:
        shown = ", ".join(result.missing_image_ids[:5])
        more = f" and {len(result.missing_image_ids) - 5} more" if len(result.missing_image_ids) > 5 else ""
        what = "could not be read" if from_model else "had no prediction"
        print(
            f"warning: {len(result.missing_image_ids)} {split.split} images {what} and were "
            f"evaluated as empty predictions: {shown}{more}",
            file=sys.stderr,
        )
        return 1
    return 0


def _evaluate_checkpoint(split, args: argparse.Namespace) -> int:
    from egtr.evaluation import write_predictions
    from egtr.inference.postprocess import PostprocessOptions

    backend = build_backend(args, args.checkpoint)
    check_fits(backend.config, split, args.checkpoint)
    predictor = build_predictor(args, backend)
    options = PostprocessOptions.for_protocol(resolve_protocol(args.protocol, split))
    predictions = list(split_predictions(predictor, split.records, options))
    if args.save_predictions:
        write_predictions(args.save_predictions, predictions)
    settings = {
        "checkpoint": str(args.checkpoint),
        "backend": backend.name,
        "size": [predictor.size, predictor.max_size],
        **inference_settings(predictor, args),
        "precision": backend.precision,
    }
    return evaluate_predictions(split, predictions, args, settings, from_model=True)


def split_predictions(predictor, records, options) -> Iterator[tuple[str, dict]]:
    """(image id, prediction of numpy arrays) of every readable image of `records`, in order, through the
    predictor's one forward loop; an unreadable image is named on stderr and left out (the evaluation
    then counts it, `count_unreadable`)."""
    from egtr.inference.postprocess import to_numpy

    for result in predictor.iter_predictions([record.image_path for record in records], options):
        record = records[result.index]
        if result.error is not None:
            print(
                f"warning: skipping image {result.source} (image id {record.image_id}): {result.error}",
                file=sys.stderr,
            )
            continue
        yield record.image_id, to_numpy(result.prediction)


def _summary(report: dict, json_path: Path, markdown_path: Path) -> str:
    from egtr.evaluation.report import text_summary

    counts = ", ".join(f"{key} {value}" for key, value in report["counts"].items())
    return f"{text_summary(report)}\ncounts: {counts}\nreport: {json_path} and {markdown_path}"
