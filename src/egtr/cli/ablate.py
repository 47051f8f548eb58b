"""`egtr ablate`: a study (named variants of config overrides) trained and tabulated in one command."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from egtr.cli.errors import CommandError
from egtr.cli.options import add_device_argument
from egtr.engine.settings import DATASETS

DEFAULT_OUT = Path("egtr-output/studies")


def add_parser(subparsers, parents) -> None:
    from egtr.studies.runner import DETECTOR_STEPS, RUN_STEPS
    from egtr.studies.synthetic import DEFAULT_IMAGES

    parser = subparsers.add_parser(
        "ablate",
        parents=parents,
        help="run an ablation study: variants x seeds from one shared detector, then a table and a plot",
        description="Run a study: train one detector (or take --init-from), then for every variant of the "
        "study file and every seed train the EGTR phase from it with the variant's overrides and test it. "
        "Writes OUT/results.json (every metric of every run), OUT/results.md (mean ± std over seeds, best "
        "per column in bold, the paper's numbers beside) and OUT/<study>.png. A killed study continues "
        "with the runs not yet finished when the same command is run again. Shipped studies: see --list; "
        "a study file of your own is a JSON file (format in docs/studies/README.md).",
    )
    parser.add_argument("--study", help="a shipped study name or a study JSON file (required unless --list)")
    parser.add_argument(
        "--list", action="store_true", help="list the shipped studies and exit (default: off)"
    )
    parser.add_argument(
        "--dataset",
        default="synthetic",
        choices=DATASETS,
        help="preset family of the runs (default: synthetic)",
    )
    parser.add_argument(
        "--data",
        type=Path,
        help="dataset folder in any supported layout (default: the synthetic world, written to OUT/data; "
        "required for the other datasets)",
    )
    parser.add_argument("--seeds", type=int, default=3, help="seeds per variant (default: 3)")
    parser.add_argument(
        "--first-seed", type=int, default=0, help="seeds are first..first+seeds-1 (default: 0)"
    )
    parser.add_argument("--out", type=Path, help=f"study folder (default: {DEFAULT_OUT}/<study name>)")
    parser.add_argument(
        "--init-from",
        metavar="PATH",
        help="start every variant from this detector (a model egtr.load_model reads) instead of training "
        "one (default: train the shared detector into OUT/detector)",
    )
    parser.add_argument(
        "--steps",
        type=int,
        help=f"EGTR training steps per variant and seed (default: {RUN_STEPS} on the synthetic world, the "
        "preset's epochs otherwise)",
    )
    parser.add_argument(
        "--detector-steps",
        type=int,
        help=f"training steps of the shared detector (default: {DETECTOR_STEPS} on the synthetic world, the "
        "preset's epochs otherwise)",
    )
    parser.add_argument(
        "--images",
        type=int,
        default=DEFAULT_IMAGES,
        help=f"synthetic world images, 80/10/10 train/val/test (default: {DEFAULT_IMAGES})",
    )
    parser.add_argument(
        "--settings",
        metavar="FILE",
        type=Path,
        help="JSON object of training-settings overrides for every run, with a 'model' object for config "
        "overrides shared by all variants (default: none)",
    )
    add_device_argument(
        parser, training=True, default=None, default_text="the preset's: cpu on the synthetic world"
    )
    parser.add_argument(
        "--parallel",
        type=int,
        default=1,
        help="runs at a time, each in its own process with cores/N torch threads and, on GPUs, its own "
        "device (default: 1, in this process)",
    )
    parser.add_argument(
        "--json", action="store_true", help="print the results summary as JSON (default: off)"
    )
    parser.set_defaults(func=run)


def read_settings_file(path: Path) -> dict:
    from egtr.studies.study import RUNNER_SETTINGS

    try:
        overrides = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise CommandError(f"--settings {path}: {error}") from error
    if not isinstance(overrides, dict):
        raise CommandError(f"--settings {path}: expected a JSON object")
    reserved = sorted(set(overrides) & set(RUNNER_SETTINGS))
    if reserved:
        raise CommandError(f"--settings {path}: {', '.join(reserved)} are set by egtr ablate itself")
    return overrides


def run(args: argparse.Namespace) -> int:
    from egtr import __version__
    from egtr.devices import uses_cuda
    from egtr.hardware import describe
    from egtr.studies.results import write_results
    from egtr.studies.runner import AblateOptions, plan_study, run_study
    from egtr.studies.study import StudyError, load_study, shipped_studies

    if args.list:
        for name in shipped_studies():
            study = load_study(name)
            print(f"{name}: {study.title}\n  " + "; ".join(variant.name for variant in study.variants))
        return 0
    if not args.study:
        raise CommandError("--study is required (see --list)")
    try:
        study = load_study(args.study)
        out = args.out or DEFAULT_OUT / study.name
        options = AblateOptions(
            out=out,
            dataset=args.dataset,
            data=args.data,
            seeds=args.seeds,
            first_seed=args.first_seed,
            steps=args.steps,
            detector_steps=args.detector_steps,
            init_from=args.init_from,
            images=args.images,
            overrides=read_settings_file(args.settings) if args.settings else {},
            accelerator=args.device,
            parallel=args.parallel,
        )
        plan = plan_study(study, options)
        print(
            f"study {study.name}: {len(plan.study.variants)} variants x {args.seeds} seeds -> {out}",
            flush=True,
        )
        outcome = run_study(plan)
    except StudyError as error:
        raise CommandError(str(error)) from error
    detector_minutes = outcome.detector["minutes"] if outcome.detector else None
    run_minutes = sum(record["minutes"] for records in outcome.records.values() for record in records)
    context = {
        "dataset": args.dataset,
        "data": str(plan.data),
        "seeds": list(range(args.first_seed, args.first_seed + args.seeds)),
        "steps per run": plan.runs[0].settings.max_steps,
        "shared detector": args.init_from or str(Path(out) / "detector"),
        "detector steps": plan.detector.settings.max_steps if plan.detector else None,
        "detector minutes": _rounded(detector_minutes),
        "minutes of all runs (sum of each run's own time)": _rounded(run_minutes),
        "minutes of this invocation": _rounded(outcome.minutes),
        "runs skipped as finished earlier": outcome.skipped,
        "parallel": args.parallel,
        "machine": describe("cuda" if uses_cuda(plan.runs[0].settings.accelerator) else "cpu"),
        "egtr version": __version__,
    }
    json_path, markdown_path, figure_path = write_results(out, plan.study, outcome.records, context)
    if args.json:
        print(json.dumps({"results": str(json_path), "failures": outcome.failures, **context}, indent=2))
    else:
        print(markdown_path.read_text(encoding="utf-8").split("\n## Variants")[0])
        print(f"results: {json_path}, {markdown_path}, {figure_path}")
    for failure in outcome.failures:
        print(f"failed: {failure}", file=sys.stderr)
    return 1 if outcome.failures else 0


def _rounded(minutes: float | None) -> float | None:
    return None if minutes is None else round(minutes, 2)
