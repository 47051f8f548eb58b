"""`egtr predict`: scene graphs of your own images and videos as JSON, with drawings and explanations.

Outputs in OUT: per image `<name>.json` (or all images in `predictions.jsonl` with --jsonl), `<name>.png`
with --draw, `<name>.explain.png` with --explain; per video `<name>.jsonl` (one line per sampled frame)
and `<name>.mp4` with --draw; and `summary.json` (settings, outputs, failures). Images found in a
directory keep their sub-folders in OUT. Every file is written atomically.

Reading and preprocessing (--workers threads), the model (--backend: PyTorch, or an export run by ONNX
Runtime or OpenVINO) and writing (one background thread) overlap; equal-size images share batches.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path

from egtr.cli.errors import CommandError
from egtr.cli.options import (
    add_backend_arguments,
    add_batching_arguments,
    add_checkpoint_argument,
    add_device_argument,
    add_logit_adjustment_arguments,
    add_max_pixels_argument,
    add_names_argument,
    add_reading_arguments,
    add_selection_arguments,
    add_size_arguments,
    build_backend,
    build_predictor,
    checkpoint_path,
    inference_settings,
)

DEFAULT_OUT = Path("egtr-output/predict")
SUMMARY_FILE, JSONL_FILE = "summary.json", "predictions.jsonl"


def add_parser(subparsers: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "predict",
        parents=parents,
        help="scene graphs of images, folders or videos as JSON, drawings and attention explanations",
        description="Predict the scene graph of each image (files, or folders searched recursively for "
        "image files; other files there are skipped) with the official preprocessing and post-processing. "
        "Video files named on the command line (.mp4, .mov, .mkv, .avi, .webm, ...; needs the video extra) "
        "give one JSON line per sampled frame. A bad image (corrupt, empty, too large, not an image) or a "
        "corrupt video frame is reported on stderr and skipped; the exit code is then 1.",
    )
    parser.add_argument(
        "inputs", nargs="+", metavar="INPUT", help="image files, folders of images and/or video files"
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
    parser.add_argument(
        "--jsonl",
        action="store_true",
        help=f"write one {JSONL_FILE} instead of a JSON per image (default: off)",
    )
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
    from egtr.files import write_text
    from egtr.inference.image_files import find_images
    from egtr.inference.output import OutputNames
    from egtr.inference.video import is_video

    check_arguments(args)
    checkpoint = checkpoint_path(args)
    found = find_images(args.inputs)
    for folder, count in found.skipped.items():
        print(f"note: {folder}: skipped {count} file(s) that are not images", file=sys.stderr)
    failures = [{"image": str(path), "error": "no such file or directory"} for path in found.missing]
    for failure in failures:
        print(f"egtr predict: {failure['image']}: {failure['error']}", file=sys.stderr)
    if not found.files:
        if failures:
            return 1
        raise CommandError(f"no image files found in {', '.join(args.inputs)}")
    backend = build_backend(args, checkpoint)
    predictor = build_predictor(args, backend, explain_rank=args.explain_rank if args.explain else None)
    if predictor.vocabulary.note:
        print(f"note: {predictor.vocabulary.note}", file=sys.stderr)
    started = time.perf_counter()
    names = OutputNames(reserved=(Path(SUMMARY_FILE).stem, Path(JSONL_FILE).stem), extras=("explain",))
    images = [file for file in found.files if not is_video(file.path)]
    outputs, more_failures = write_predictions(predictor, images, args, names)
    videos, video_failures = write_videos(
        predictor, [f for f in found.files if is_video(f.path)], args, names
    )
    failures += more_failures
    summary = build_summary(args, predictor, checkpoint, outputs, failures, time.perf_counter() - started)
    if videos or video_failures:
        summary["videos"] = videos
        summary["failed"] = failures = failures + video_failures
    write_text(args.out / SUMMARY_FILE, json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2) if args.json else summary_text(summary))
    return 1 if failures else 0


def write_predictions(predictor, files, args: argparse.Namespace, names) -> tuple[list[dict], list[dict]]:
    """Predict every image file and write its outputs on a background thread (in input order, at most a
    few results waiting); returns (outputs per image, failures)."""
    from egtr.inference.output import JsonLinesWriter

    outputs, failures = [], []
    if not files:
        return outputs, failures
    max_waiting = 2 * args.batch_size + 2
    lines = JsonLinesWriter(args.out / JSONL_FILE) if args.jsonl else None
    try:
        with ThreadPoolExecutor(1, thread_name_prefix="egtr-write") as writer:
            waiting: deque = deque()
            results = predictor.iter_predict(
                [file.path for file in files], progress=not args.no_progress, total=len(files)
            )
            for result in results:
                if result.error is not None:
                    print(f"egtr predict: {result.source}: {result.error}", file=sys.stderr)
                    failures.append({"image": result.source, "error": result.error})
                    continue
                stem = names.claim(files[result.index].relative_name)
                waiting.append(writer.submit(write_outputs, result, args.out / stem, lines, args))
                while len(waiting) > max_waiting:
                    outputs.append(waiting.popleft().result())
            outputs.extend(future.result() for future in waiting)
    finally:
        if lines is not None:
            lines.close()
    return outputs, failures


def write_videos(predictor, files, args: argparse.Namespace, names) -> tuple[list[dict], list[dict]]:
    """Predict the sampled frames of every video; returns (one entry per video, failures)."""
    from egtr.inference.video import VideoReadError, predict_video

    entries, failures = [], []
    for file in files:
        try:
            entry = predict_video(
                predictor,
                file.path,
                args.out / names.claim(file.relative_name),
                every=args.every,
                fps=args.fps,
                draw_triplets=args.draw_edges if args.draw else None,
                progress=not args.no_progress,
            )
        except VideoReadError as error:
            print(f"egtr predict: {error}", file=sys.stderr)
            failures.append({"video": str(file.path), "error": str(error)})
            continue
        entries.append(entry)
        if entry["frames_skipped"]:
            reasons = "; ".join(entry["skip_reasons"][:2])
            error = f"{entry['frames_skipped']} corrupt frame(s) skipped ({reasons})"
            print(f"egtr predict: {file.path}: {error}", file=sys.stderr)
            failures.append({"video": str(file.path), "error": error})
    return entries, failures


def write_outputs(result, stem: Path, lines, args: argparse.Namespace) -> dict:
    """Write one image's JSON (or JSON line), drawing and explanation; returns what was written."""
    from egtr.files import write_text
    from egtr.inference.explain import draw_explanation
    from egtr.inference.visualize import draw_scene_graph

    graph = result.graph
    entry = {"image": result.source, "objects": len(graph.labels), "triplets": len(graph.triplets)}
    if lines is not None:
        lines.write(graph.to_dict())
        entry["json"] = str(lines.path)
    else:
        entry["json"] = str(write_text(f"{stem}.json", graph.to_json()))
    if args.draw:
        entry["drawing"] = str(
            draw_scene_graph(
                result.image, graph, f"{stem}.png", max_edges=args.draw_edges, layout=args.layout
            )
        )
    if args.explain and graph.explanation is None:
        print(
            f"note: {result.source}: no triplet at rank {args.explain_rank} "
            f"({len(graph.triplets)} triplets); nothing to explain",
            file=sys.stderr,
        )
    elif args.explain:
        entry["explain"] = str(
            draw_explanation(graph.explanation, f"{stem}.explain.png", Path(result.source).name)
        )
    return entry


def build_summary(args, predictor, checkpoint: Path, outputs, failures, seconds: float) -> dict:
    processed = len(outputs) + len(failures)
    return {
        "images": processed,
        "predicted": len(outputs),
        "failed": failures,
        "seconds": round(seconds, 3),
        "images_per_second": round(len(outputs) / seconds, 3) if seconds > 0 else None,
        "out": str(args.out),
        "outputs": outputs,
        "settings": {
            "checkpoint": str(checkpoint),
            "backend": predictor.backend.name,
            "precision": predictor.backend.precision,
            "device": str(predictor.device),
            "names": predictor.vocabulary.source,
            "size": predictor.size,
            "max_size": predictor.max_size,
            "batch_size": predictor.batch_size,
            "pad_mixed_sizes": predictor.pad_mixed_sizes,
            **asdict(predictor.default_selection.triplets),
            **inference_settings(predictor, args),
        },
    }


def summary_text(summary: dict) -> str:
    rate = summary["images_per_second"]
    speed = f", {rate:.2f} images/s" if rate else ""
    failed = f", {len(summary['failed'])} failed" if summary["failed"] else ""
    counts = f"{summary['predicted']} of {summary['images']} images predicted{failed}"
    if summary.get("videos"):
        frames = sum(video["frames_predicted"] for video in summary["videos"])
        counts += f", {frames} frames of {len(summary['videos'])} video(s)"
    return (
        f"{counts} in {summary['seconds']:.1f} s{speed} on {summary['settings']['device']}; "
        f"results in {summary['out']}"
    )
