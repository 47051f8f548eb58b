"""`egtr export`: a checkpoint -> ONNX (`model.onnx`) and/or OpenVINO IR (`model.xml` + `model.bin`).

The exported graph returns the model's raw outputs for any batch size, height and width; config, names,
preprocessing and predicate prior travel in its metadata. Unless --no-check, each export is run on a batch
of another size and count than the traced one and compared with PyTorch (max abs difference of every raw
output <= 1e-4), and removed again when it is not. `OUT/export.json` reports files and differences.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from egtr.cli.errors import CommandError
from egtr.cli.options import add_names_argument
from egtr.export.formats import DEFAULT_FORMAT, FORMATS, REPORT_FILE, export_format
from egtr.sizes import EVAL_MAX_SIZE, EVAL_SIZE

DEFAULT_OUT = Path("egtr-output/export")


def add_parser(subparsers: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "export",
        parents=parents,
        help="export a model to ONNX or OpenVINO for `egtr predict --backend onnxruntime|openvino`",
        description="Export the network of CHECKPOINT (any file or folder egtr.load_model accepts) with "
        "dynamic batch, height and width. The graph returns the raw outputs (class logits, boxes, relation "
        "and connectivity logits); scores and triplets are computed in Python by `egtr predict`, the same "
        "code as for PyTorch.",
    )
    parser.add_argument("checkpoint", metavar="CHECKPOINT", help="the model to export")
    parser.add_argument(
        "--format",
        nargs="+",
        choices=FORMATS,
        default=[DEFAULT_FORMAT],
        help="onnx (DIR/model.onnx) and/or openvino (DIR/model.xml + model.bin) (default: onnx)",
    )
    parser.add_argument(
        "--out", metavar="DIR", type=Path, default=DEFAULT_OUT, help="output folder (default: %(default)s)"
    )
    add_names_argument(parser, " to store in the export")
    parser.add_argument(
        "--size",
        type=int,
        metavar="N",
        default=EVAL_SIZE,
        help="shorter image side to store (default: %(default)s)",
    )
    parser.add_argument(
        "--max-size",
        type=int,
        metavar="N",
        default=EVAL_MAX_SIZE,
        help="longest side cap to store (default: %(default)s)",
    )
    parser.add_argument(
        "--opset", type=int, metavar="N", default=17, help="ONNX opset, 17 to 20 (default: 17)"
    )
    parser.add_argument(
        "--no-check",
        action="store_true",
        help="skip running each export against PyTorch on a check batch (default: checked)",
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON (default: text)")
    parser.set_defaults(func=run)


def check_export(model, file: Path, format_name: str) -> dict[str, float]:
    """Run the export against PyTorch; remove it and fail when an output differs by more than 1e-4."""
    from egtr.export.check import TOLERANCE, compare_with_torch
    from egtr.export.exporter import load_backend

    written = export_format(format_name)
    differences = compare_with_torch(model, load_backend(written.runtime, file))
    bad = {name: value for name, value in differences.items() if not value <= TOLERANCE}
    if bad:
        for path in [file, *(file.with_suffix(suffix) for suffix in written.companions)]:
            path.unlink(missing_ok=True)
        shown = ", ".join(f"{name} by {value:.3g}" for name, value in bad.items())
        raise CommandError(
            f"{file}: the {format_name} export differs from PyTorch ({shown}; tolerance {TOLERANCE}) on a "
            "batch of another size than the traced one; the file was removed"
        )
    return differences


def run(args: argparse.Namespace) -> int:
    from egtr.checkpoints import load_model
    from egtr.export.exporter import export_metadata, export_model
    from egtr.files import write_text

    model = load_model(args.checkpoint)
    metadata = export_metadata(model, args.names, args.size, args.max_size, args.opset)
    formats = list(dict.fromkeys(args.format))
    written = export_model(model, args.out, formats, metadata)
    report = {
        "checkpoint": str(args.checkpoint),
        "files": {name: str(path) for name, path in written.items()},
        "opset": args.opset,
        "preprocessing": metadata.preprocessing(),
        "outputs": json.loads(metadata.to_strings()["egtr.outputs"]),
        "checked": not args.no_check,
        "max_abs_difference": {},
    }
    if not args.no_check:
        for name, path in written.items():
            report["max_abs_difference"][name] = check_export(model, path, name)
    write_text(args.out / REPORT_FILE, json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2) if args.json else report_text(report))
    return 0


def report_text(report: dict) -> str:
    lines = [f"exported {report['checkpoint']} (opset {report['opset']}):"]
    for name, path in report["files"].items():
        differences = report["max_abs_difference"].get(name)
        check = (
            "not checked"
            if differences is None
            else "max abs difference from PyTorch "
            + ", ".join(f"{output} {value:.1e}" for output, value in differences.items())
        )
        lines.append(f"  {name}: {path} ({check})")
    return "\n".join(lines)
