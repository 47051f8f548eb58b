"""`egtr export`: a checkpoint -> ONNX (`model.onnx`) and/or OpenVINO IR (`model.xml` + `model.bin`), in
fp32, as INT8 models (`--int8 --calibration DATA_OR_IMAGES`) or as a bf16 export (`--precision bf16`).

The exported graph returns the model's raw outputs for any batch size, height and width; config, names,
preprocessing, predicate prior, precision and quantization settings travel in its metadata. Unless
--no-check, each export is run on a batch of another size and count than the traced one and compared with
PyTorch fp32 (egtr.export.check: max abs difference of every raw output within its precision's
tolerance; an INT8 model on its calibration images, its fp32 graph on noise first), and removed again when
it is not; an INT8 or bf16 export is also compared with PyTorch fp32 on
the calibration images (top-100 triplet overlap, largest raw-output differences: egtr.export.compare).
`OUT/export.json` reports files, settings and differences.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from egtr.cli.errors import CommandError
from egtr.cli.options import add_names_argument
from egtr.export.formats import DEFAULT_FORMAT, EXPORT_FORMATS, FORMATS, REPORT_FILE, export_format
from egtr.export.int8 import CALIBRATION_SIZE, KEEP_FP32
from egtr.precision import PRECISIONS
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
        "--precision",
        default=PRECISIONS[0],
        choices=PRECISIONS,
        help="the precision the export runs in unless `--precision` says otherwise when it is run (stored in "
        "its metadata; bf16/fp16 for openvino on CPUs that compute them natively); with --int8, that of the "
        "layers left in floating point (default: %(default)s)",
    )
    int8 = parser.add_argument_group("INT8 post-training quantization")
    quantizers = "; ".join(f"{f.name}: {f.quantizer}" for f in EXPORT_FORMATS if f.quantize is not None)
    int8.add_argument(
        "--int8",
        action="store_true",
        help=f"write INT8 models, calibrated on --calibration ({quantizers}) (default: off, fp32)",
    )
    int8.add_argument(
        "--calibration",
        metavar="DATA_OR_IMAGES",
        help="a dataset folder (its train split, else val or test) or a folder of images, read and "
        "resized as for prediction at --size/--max-size: calibrates --int8, and an INT8 or bf16 export "
        "is compared with PyTorch fp32 on these images (default: none; required with --int8)",
    )
    int8.add_argument(
        "--calibration-size",
        type=int,
        metavar="N",
        default=CALIBRATION_SIZE,
        help="images taken from --calibration, spread evenly over it (default: %(default)s)",
    )
    int8.add_argument(
        "--keep-fp32",
        nargs="*",
        metavar="MODULE",
        default=list(KEEP_FP32),
        help="modules left in floating point, by name (dot-separated parts of their path, e.g. "
        "relation_head, detector.bbox_embed, encoder.layers.5) (default: %(default)s)",
    )
    parser.add_argument(
        "--no-check",
        action="store_true",
        help="skip running each export against PyTorch on a check batch and on the calibration images "
        "(default: checked)",
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON (default: text)")
    parser.set_defaults(func=run)


def check_export(model, file: Path, format_name: str, images=None) -> dict:
    """Run the export against PyTorch fp32 on the check batch (egtr.export.check; on `images`, calibration
    images, when given); remove it and fail when it is outside its precision's tolerance. Returns the
    check's report."""
    from egtr.export.check import check_backend
    from egtr.export.exporter import load_backend

    written = export_format(format_name)

    def remove() -> None:
        for path in [file, *(file.with_suffix(suffix) for suffix in written.companions)]:
            path.unlink(missing_ok=True)

    try:
        backend = load_backend(written.runtime, file)
    except ValueError as error:  # e.g. a bf16 export on a CPU without native bf16
        remove()
        raise CommandError(f"{file}: cannot be checked here ({error}); the file was removed") from error
    check = check_backend(model, backend, images)
    if check["failed"]:
        remove()
        batch = "another size than the traced one" if images is None else "calibration images"
        raise CommandError(
            f"{file}: the {format_name} export differs from PyTorch ({check['failed']}) on a batch of "
            f"{batch}; the file was removed"
        )
    return check


def run(args: argparse.Namespace) -> int:
    from egtr.checkpoints import load_model
    from egtr.export.exporter import export_metadata, export_model, quantize_exports
    from egtr.export.int8 import Int8Settings, calibration_set
    from egtr.files import write_text

    if args.int8 and not args.calibration:
        raise CommandError("--int8 needs --calibration DATA_OR_IMAGES (a dataset or a folder of images)")
    if not args.int8 and args.keep_fp32 != list(KEEP_FP32):
        raise CommandError("--keep-fp32 has no effect without --int8")
    model = load_model(args.checkpoint)
    try:
        metadata = export_metadata(model, args.names, args.size, args.max_size, args.opset, args.precision)
        settings = Int8Settings(args.calibration, args.calibration_size, tuple(args.keep_fp32))
        calibration = None
        if args.calibration:
            calibration = calibration_set(
                args.calibration, args.calibration_size, metadata.size, metadata.max_size
            )
        formats = list(dict.fromkeys(args.format))
        written = export_model(model, args.out, formats, metadata)
    except ValueError as error:
        raise CommandError(str(error)) from error
    report = {
        "checkpoint": str(args.checkpoint),
        "files": {name: str(path) for name, path in written.items()},
        "opset": args.opset,
        "preprocessing": metadata.preprocessing(),
        "outputs": json.loads(metadata.to_strings()["egtr.outputs"]),
        "precision": metadata.precision,
        "quantization": None,
        "checked": not args.no_check,
        "check": {},
        "comparison": {},
    }
    if calibration is not None and calibration.skipped:
        for skipped in calibration.skipped:
            print(f"warning: calibration image skipped: {skipped}", file=sys.stderr)
    if args.int8:
        if not args.no_check:  # the fp32 graph first: a failure here is the export's, not the rounding's
            for name, path in written.items():
                check_export(model, path, name)
        report["quantization"] = quantize_exports(written, calibration, settings, metadata)
    if not args.no_check:
        images = calibration.images if args.int8 else None  # INT8: its calibration images (export/check.py)
        for name, path in written.items():
            report["check"][name] = check_export(model, path, name, images)
            if calibration is not None and (args.int8 or metadata.precision != "fp32"):
                report["comparison"][name] = compare_on_calibration(model, path, name, calibration)
    write_text(args.out / REPORT_FILE, json.dumps(report, indent=2) + "\n")
    print(json.dumps(report, indent=2) if args.json else report_text(report))
    return 0


def compare_on_calibration(model, file: Path, format_name: str, calibration) -> dict:
    """The export against PyTorch fp32 on the calibration images (egtr.export.compare)."""
    from egtr.export.compare import compare_backends
    from egtr.export.exporter import load_backend
    from egtr.inference.backend import TorchBackend

    candidate = load_backend(export_format(format_name).runtime, file)
    return compare_backends(TorchBackend(model, "cpu"), candidate, calibration.images)


def report_text(report: dict) -> str:
    kind = "INT8" if report["quantization"] else report["precision"]
    lines = [f"exported {report['checkpoint']} ({kind}, opset {report['opset']}):"]
    for name, path in report["files"].items():
        check = report["check"].get(name)
        shown = "not checked"
        if check is not None:
            shown = "max abs difference from PyTorch fp32 " + ", ".join(
                f"{output} {value:.1e}" for output, value in check["max_abs_difference"].items()
            )
        lines.append(f"  {name}: {path} ({shown})")
        comparison = report["comparison"].get(name)
        if comparison is not None:
            overlap = comparison["top100_overlap"]
            largest = comparison["max_abs_difference"]
            lines.append(
                f"    on {comparison['images']} calibration images: top-100 triplet overlap "
                f"{overlap['mean']:.1%} (lowest {overlap['min']:.1%}); max abs difference "
                + ", ".join(f"{output} {value:.2g}" for output, value in largest.items())
            )
    return "\n".join(lines)
