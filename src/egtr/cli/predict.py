"""`egtr predict`: scene graphs of your own images, folders, whole collections and videos.

Images (files, folders searched recursively, glob patterns, a --file-list) are labelled by egtr.bulk into
OUT, resumably: per image `<name>.json` (with `<name>.png` for --draw, `<name>.explain.png` for --explain),
or shards of JSON Lines (--jsonl) or Parquet (--parquet) with their index; `run.json` records the model and
settings, `summary.json` the counts. Started again with the same command, a run predicts only what is not
committed yet. --devices / --num-nodes split the images between processes (egtr.engine.prediction, Lightning).
Per video: `<name>.jsonl` (one line per sampled frame) and `<name>.mp4` with --draw, redone at every run.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from egtr.bulk.shard_formats import DEFAULT_SHARD_SIZE
from egtr.cli.errors import CommandError
from egtr.cli.options import (
    add_backend_arguments,
    add_batching_arguments,
    add_checkpoint_argument,
    add_device_argument,
    add_logit_adjustment_arguments,
    add_max_pixels_argument,
    add_names_argument,
    add_process_arguments,
    add_reading_arguments,
    add_selection_arguments,
    add_size_arguments,
    build_backend,
    build_predictor,
    build_processes,
    checkpoint_path,
)

DEFAULT_OUT = Path("egtr-output/predict")


def add_parser(subparsers: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "predict",
        parents=parents,
        help="scene graphs of images, folders, collections or videos: JSON, Parquet, drawings, explanations",
        description="Predict the scene graph of each image with the official preprocessing and post-"
        "processing. Sources: image files, folders (searched recursively for image files; "
        "other files there are skipped), glob patterns (quoted; ** crosses folders) and "
        "--file-list. Resumable: started again with the same sources, model and settings, a "
        "run predicts only the images not committed in OUT yet (another model or other "
        "settings are refused; --overwrite starts afresh). Video files named on the command "
        "line (.mp4, .mov, .mkv, .avi, .webm, ...; needs the video extra) give one JSON line "
        "per sampled frame. A bad image (corrupt, empty, too large, not an image) or a corrupt"
        " video frame is reported on stderr and skipped; the exit code is then 1.",
    )
    parser.add_argument(
        "inputs",
        nargs="*",
        metavar="SOURCE",
        help="image files, folders, glob patterns and/or video files",
    )
    parser.add_argument(
        "--file-list",
        metavar="FILE",
        help="a file naming one image per line (UTF-8, relative to the current folder), for collections too "
        "large for a command line (default: none)",
    )
    add_checkpoint_argument(parser, backends=True, demo_default=True)
    add_backend_arguments(parser)
    parser.add_argument(
        "--out", metavar="DIR", type=Path, default=DEFAULT_OUT, help="output folder (default: %(default)s)"
    )
    add_names_argument(parser)
    add_device_argument(parser)
    add_batching_arguments(parser)
    add_size_arguments(parser)
    add_selection_arguments(parser)
    add_max_pixels_argument(parser)
    add_logit_adjustment_arguments(parser)
    add_reading_arguments(parser)
    sampling = parser.add_mutually_exclusive_group()
    sampling.add_argument(
        "--every", type=int, metavar="N", help="videos: predict every Nth frame (default: every frame)"
    )
    sampling.add_argument(
        "--fps",
        type=float,
        metavar="F",
        help="videos: predict F frames per second, chosen by timestamp (default: every frame)",
    )
    parser.add_argument(
        "--draw",
        action="store_true",
        help="write a PNG of boxes and graph per image, an annotated MP4 per video (default: off)",
    )
    parser.add_argument(
        "--draw-edges", type=int, metavar="N", default=10, help="triplets drawn with --draw (default: 10)"
    )
    parser.add_argument(
        "--layout",
        default="auto",
        choices=("auto", "dot", "spring"),
        help="graph layout: graphviz dot, a spring layout, or auto (dot when installed) (default: auto)",
    )
    parser.add_argument(
        "--explain",
        action="store_true",
        help="explain one triplet per image: per-layer attention between its two queries and the gate of "
        "each relation source, as <name>.explain.png and an 'explain' entry in the JSON (default: off)",
    )
    parser.add_argument(
        "--explain-rank",
        type=int,
        metavar="K",
        default=1,
        help="which triplet --explain shows, 1 = best (default: 1)",
    )
    layout = parser.add_mutually_exclusive_group()
    layout.add_argument(
        "--jsonl",
        action="store_true",
        help="shards of JSON Lines, one line per image (the JSON of an image), in OUT/shards/ with their "
        "index, instead of a JSON per image (default: off)",
    )
    layout.add_argument(
        "--parquet",
        action="store_true",
        help="shards of Parquet, one row per image (path, width, height, objects, triplets as nested "
        "columns; the parquet extra), in OUT/shards/ with their index (default: off)",
    )
    parser.add_argument(
        "--shard-size",
        type=int,
        metavar="N",
        default=DEFAULT_SHARD_SIZE,
        help="images per shard of --jsonl / --parquet; a kill loses at most the shard being filled in each "
        "process (default: %(default)s)",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="start afresh: remove what egtr predict wrote in OUT, other files stay (default: off, resume "
        "what is there)",
    )
    add_process_arguments(parser)
    parser.add_argument(
        "--no-progress", action="store_true", help="no progress bar on stderr (default: progress shown)"
    )
    parser.add_argument("--json", action="store_true", help="print the summary as JSON (default: text)")
    parser.set_defaults(func=run)


def check_arguments(args: argparse.Namespace) -> None:
    for flag, value in (("--draw-edges", args.draw_edges), ("--explain-rank", args.explain_rank)):
        if value < 1:
            raise CommandError(f"{flag} must be at least 1, got {value}")
    if args.every is not None and args.every < 1:
        raise CommandError(f"--every must be at least 1, got {args.every}")
    if args.fps is not None and not args.fps > 0:
        raise CommandError(f"--fps must be positive, got {args.fps}")


def run(args: argparse.Namespace) -> int:
    from egtr.bulk.run import SUMMARY_FILE, CollectionRun, OutputOptions
    from egtr.bulk.sources import find_collection
    from egtr.engine.prediction import first_process, run_prediction
    from egtr.files import write_text
    from egtr.inference.video import is_video

    check_arguments(args)
    if not args.inputs and args.file_list is None:
        raise CommandError("name the images to predict: files, folders, patterns or --file-list FILE")
    checkpoint = checkpoint_path(args)
    processes = build_processes(args)
    collection = find_collection(args.inputs, args.file_list)
    videos = [image for image in collection.images if is_video(image.key)]
    collection.images = [image for image in collection.images if not is_video(image.key)]
    if videos and processes.world_size > 1:
        raise CommandError("videos are predicted in one process: run them without --devices / --num-nodes")
    first = first_process()
    for source, count in collection.skipped.items():
        note(first, f"note: {source}: skipped {count} file(s) that are not images")
    for entry in collection.missing:
        note(first, f"egtr predict: {entry['input']}: {entry['error']}")
    if not collection.images and not videos:
        if collection.missing:
            return 1
        raise CommandError(
            f"no image files found in {', '.join([*args.inputs, *filter(None, [args.file_list])])}"
        )
    backend = build_backend(args, checkpoint, device=processes.local_device())
    predictor = build_predictor(args, backend, explain_rank=args.explain_rank if args.explain else None)
    if predictor.vocabulary.note:
        note(first, f"note: {predictor.vocabulary.note}")
    drawing = {"draw_edges": args.draw_edges, "graph_layout": args.layout} if args.draw else None
    layout = "jsonl" if args.jsonl else "parquet" if args.parquet else "json"
    options = OutputOptions(
        args.out, layout, args.shard_size, args.overwrite, drawing, args.explain, not args.no_progress
    )
    job = CollectionRun(predictor, collection, options, checkpoint)
    job.prepare()
    if run_prediction(predictor, job, processes) != 0:
        return 0  # the first process reports for all
    summary = job.summary
    if videos:
        summary["videos"], summary["failed_videos"] = write_videos(predictor, videos, args, job.names)
    write_text(args.out / SUMMARY_FILE, json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2) if args.json else summary_text(summary))
    return 1 if summary["unreadable"] or summary["missing"] or summary.get("failed_videos") else 0


def note(first: bool, text: str) -> None:
    """A message on stderr, from the first process only (the others would repeat it)."""
    if first:
        print(text, file=sys.stderr)


def write_videos(predictor, files, args: argparse.Namespace, names) -> tuple[list[dict], list[dict]]:
    """Predict the sampled frames of every video; returns (one entry per video, failures)."""
    from egtr.inference.video import VideoReadError, predict_video

    entries, failures = [], []
    for file in files:
        try:
            entry = predict_video(
                predictor,
                file.key,
                args.out / names.claim(file.relative_name),
                every=args.every,
                fps=args.fps,
                draw_triplets=args.draw_edges if args.draw else None,
                progress=not args.no_progress,
            )
        except VideoReadError as error:
            print(f"egtr predict: {error}", file=sys.stderr)
            failures.append({"video": file.key, "error": str(error)})
            continue
        entries.append(entry)
        if entry["frames_skipped"]:
            reasons = "; ".join(entry["skip_reasons"][:2])
            error = f"{entry['frames_skipped']} corrupt frame(s) skipped ({reasons})"
            print(f"egtr predict: {file.key}: {error}", file=sys.stderr)
            failures.append({"video": file.key, "error": error})
    return entries, failures


def summary_text(summary: dict) -> str:
    rate = summary["images_per_second"]
    counts = f"{summary['done_now']} of {summary['found']} images predicted"
    if summary["done_before"]:
        counts += f", {summary['done_before']} done before"
    if summary["unreadable"]:
        counts += f", {len(summary['unreadable'])} unreadable"
    if summary["missing"]:
        counts += f", {len(summary['missing'])} missing"
    if summary.get("videos"):
        frames = sum(video["frames_predicted"] for video in summary["videos"])
        counts += f", {frames} frames of {len(summary['videos'])} video(s)"
    processes = f" in {summary['processes']} processes" if summary["processes"] > 1 else ""
    speed = f", {rate:.2f} images/s" if rate else ""
    return (
        f"{counts} in {summary['seconds']:.1f} s{speed} on {summary['settings']['device']}{processes}; "
        f"results in {summary['out']}"
    )
