"""The ablation runner: one shared detector, then every variant x seed trains the EGTR phase from it.

Folder of a study (`OUT`):
    data/                     the synthetic world, when no --data is given
    detector/                 the shared detector (an engine phase folder), unless --init-from
    runs/<variant>/seed-<k>/  one engine phase folder per variant and seed, `result.json` when finished
    study.json, plan.json     the study as run (per-layer variants written out) and every run's settings
    results.json, results.md, <study>.png   written by `egtr.studies.results`

Every run goes through `egtr.engine.run_phase` (Lightning), in this process one after the other, or in
`parallel` worker processes (`python -m egtr.studies.job`) with cores / parallel torch threads each and,
on GPUs, one device per process. Finished runs are skipped, so a killed study continues where it stopped.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from egtr.devices import uses_cuda
from egtr.engine.settings import TrainSettings, merge, preset
from egtr.files import write_text
from egtr.studies.job import (
    RESULT_FILE,
    read_result,
    remove_trainer_checkpoints,
    run_job,
    same_settings,
    worker_command,
)
from egtr.studies.study import Study, StudyError
from egtr.studies.synthetic import DEFAULT_IMAGES, ensure_synthetic_data, synthetic_training_overrides

# the default budget on the synthetic world (the README's "Studies" section gives its run and study times,
# measured with their machine)
DETECTOR_STEPS = 800
RUN_STEPS = 150
POLL_SECONDS = 0.5
TERMINATE_SECONDS = 30


@dataclass
class AblateOptions:
    out: Path
    dataset: str = "synthetic"  # preset family of egtr.engine.settings
    data: Path | None = None  # dataset folder; None: the synthetic world written into OUT/data
    seeds: int = 3
    first_seed: int = 0
    steps: int | None = None  # EGTR steps per run (None: RUN_STEPS on the synthetic world, else the preset)
    detector_steps: int | None = None  # (None: DETECTOR_STEPS on the synthetic world, else the preset)
    init_from: str | None = None  # a trained detector (or EGTR model) instead of training one
    images: int = DEFAULT_IMAGES  # synthetic world size
    overrides: dict[str, Any] = field(default_factory=dict)  # TrainSettings overrides for every run
    accelerator: str | None = None
    parallel: int = 1

    def __post_init__(self) -> None:
        if self.seeds < 1:
            raise StudyError("--seeds must be at least 1")
        if self.parallel < 1:
            raise StudyError("--parallel must be at least 1")
        for name in ("steps", "detector_steps"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise StudyError(f"--{name.replace('_', '-')} must be at least 1")


@dataclass
class Job:
    title: str
    settings: TrainSettings
    meta: dict[str, Any]  # copied into result.json: phase, variant, slug, seed

    @property
    def folder(self) -> Path:
        return Path(self.settings.out)


@dataclass
class StudyPlan:
    study: Study  # per-layer variants written out
    options: AblateOptions
    data: Path
    detector: Job | None  # None with --init-from
    runs: list[Job]


@dataclass
class StudyOutcome:
    records: dict[str, list[dict]]  # variant slug -> result.json records, by seed
    detector: dict | None
    failures: list[str]  # one line per run that did not finish
    minutes: float  # wall time of this invocation
    skipped: int  # runs found finished


def study_budget(steps: int | None) -> dict[str, Any]:
    """Overrides of a run with a step budget: validate twice (a killed run resumes from the first)."""
    if steps is None:
        return {"metrics_every": 0}
    return {"max_steps": steps, "val_check_interval": max(1, steps // 2), "metrics_every": 0}


def plan_study(study: Study, options: AblateOptions) -> StudyPlan:
    """Every run's settings; writes the synthetic world into OUT/data when needed."""
    out = Path(options.out)
    synthetic = options.dataset == "synthetic"
    if options.data is None and not synthetic:
        raise StudyError(f"--data is required for --dataset {options.dataset}")
    data = (
        Path(options.data)
        if options.data is not None
        else ensure_synthetic_data(out / "data", options.images)
    )
    common: dict[str, Any] = synthetic_training_overrides() if synthetic else {}
    common.update(options.overrides)
    common.update(data=str(data), devices=1)
    if options.accelerator:
        common["accelerator"] = options.accelerator
    common_model = dict(common.pop("model", {}))
    run_steps = options.steps if options.steps is not None else (RUN_STEPS if synthetic else None)
    detector_steps = options.detector_steps
    if detector_steps is None and synthetic:
        detector_steps = DETECTOR_STEPS

    detector = None
    init_from = options.init_from
    if init_from is None:
        settings = merge(
            preset(options.dataset, "detector"),
            {
                **common,
                **study_budget(detector_steps),
                "model": common_model,
                "out": str(out / "detector"),
                "seed": options.first_seed,
            },
        )
        detector = Job("shared detector", settings, {"phase": "detector"})
        init_from = str(out / "detector" / "model.safetensors")
    study = study.expanded(decoder_layers(options, common_model))
    runs = []
    # seed-major: every variant gets its first seed before any gets a second, so a study stopped early
    # (or first run with --seeds 1, then extended) already covers every variant
    for seed in range(options.first_seed, options.first_seed + options.seeds):
        for variant in study.variants:
            overrides = {
                **common,
                **study_budget(run_steps),
                **variant.settings,
                "model": {**common_model, **variant.model},
                "out": str(out / "runs" / variant.slug / f"seed-{seed}"),
                "seed": seed,
                "init_from": init_from,
            }
            try:
                settings = merge(preset(options.dataset, "egtr"), overrides)
            except (TypeError, ValueError) as error:
                raise StudyError(f"{study.source}: variant {variant.name!r}: {error}") from error
            meta = {"phase": "egtr", "variant": variant.name, "slug": variant.slug, "seed": seed}
            runs.append(Job(f"{variant.name}, seed {seed}", settings, meta))
    return StudyPlan(study, options, data, detector, runs)


def decoder_layers(options: AblateOptions, model_overrides: dict[str, Any]) -> int:
    """Decoder layers of the model the variants train (for the per-layer variants)."""
    if options.init_from is not None:
        from egtr.checkpoints import load_model

        base = load_model(options.init_from).config
    else:
        from egtr.engine.run import MODEL_PRESETS

        base = MODEL_PRESETS[options.dataset]()
    return int(model_overrides.get("decoder_layers", base.decoder_layers))


def write_plan(plan: StudyPlan) -> None:
    out = Path(plan.options.out)
    write_text(out / "study.json", json.dumps(plan.study.to_dict(), indent=2) + "\n")
    jobs = ([plan.detector] if plan.detector else []) + plan.runs
    entries = [{"title": job.title, **job.meta, "settings": job.settings.to_dict()} for job in jobs]
    write_text(out / "plan.json", json.dumps(entries, indent=2) + "\n")


def finished(job: Job) -> dict | None:
    """The job's record when it already ran with these settings; StudyError when it ran with others."""
    record = read_result(job.folder)
    if record is None:
        return None
    if not same_settings(record.get("settings", {}), job.settings):
        planned = job.settings.to_dict()
        differing = sorted(
            key for key, value in planned.items() if record.get("settings", {}).get(key) != value
        )
        raise StudyError(
            f"{job.folder / RESULT_FILE}: this run finished with other settings ({', '.join(differing)}); "
            "use another --out, or delete that run folder to train it again"
        )
    remove_trainer_checkpoints(job.folder)  # left behind when a kill came right after the result
    return record


def run_study(plan: StudyPlan, log: Callable[[str], None] = print) -> StudyOutcome:
    """Train whatever is not finished yet (detector first), then return every finished run's record."""
    started = time.perf_counter()
    detector_record = finished(plan.detector) if plan.detector is not None else None
    pending = [job for job in plan.runs if finished(job) is None]  # checks every finished run first
    write_plan(plan)
    if plan.detector is not None:
        if detector_record is None:
            log(f"training the shared detector into {plan.detector.folder}")
            detector_record = run_job(plan.detector.settings, plan.detector.meta)
        else:
            log(f"shared detector: finished earlier ({plan.detector.folder})")
    skipped = len(plan.runs) - len(pending)
    if skipped:
        log(f"{skipped} of {len(plan.runs)} runs finished earlier: skipped")
    failures: list[str] = []
    if plan.options.parallel == 1:
        outcomes = run_in_process(pending, log)
    else:
        accelerator = plan.runs[0].settings.accelerator
        outcomes = run_in_workers(pending, plan.options.parallel, accelerator, log)
    for index, (job, error) in enumerate(outcomes, start=skipped + 1):
        state = "failed: " + error if error else "finished"
        log(f"[{index}/{len(plan.runs)}] {job.title}: {state}")
        if error:
            failures.append(f"{job.title}: {error}")
    records: dict[str, list[dict]] = {variant.slug: [] for variant in plan.study.variants}
    for job in plan.runs:
        record = read_result(job.folder)
        if record is not None:
            records[job.meta["slug"]].append(record)
    return StudyOutcome(records, detector_record, failures, (time.perf_counter() - started) / 60, skipped)


def run_in_process(jobs: list[Job], log: Callable[[str], None]) -> Iterator[tuple[Job, str | None]]:
    """Run jobs one after the other in this process (Lightning's progress bar shows each)."""
    for job in jobs:
        log(f"training {job.title} into {job.folder}")
        try:
            run_job(job.settings, job.meta)
        except Exception as error:  # one broken variant must not stop the others; reported at the end
            yield job, f"{type(error).__name__}: {error}".splitlines()[0]
        else:
            yield job, None


def run_in_workers(
    jobs: list[Job], parallel: int, accelerator: str, log: Callable[[str], None]
) -> Iterator[tuple[Job, str | None]]:
    """Run jobs in `parallel` worker processes at a time; each writes its output to `<run>/log.txt`."""
    threads = max(1, (os.cpu_count() or 1) // parallel)
    gpus = visible_gpus(accelerator)
    queue = deque(jobs)
    running: dict[int, tuple[subprocess.Popen, Job, Any]] = {}
    try:
        while queue or running:
            for slot in range(parallel):
                if slot not in running and queue:
                    job = queue.popleft()
                    job.folder.mkdir(parents=True, exist_ok=True)
                    log_file = open(job.folder / "log.txt", "a")  # noqa: SIM115 (closed when the worker ends)
                    env = worker_environment(threads, slot, gpus)
                    command = worker_command(job.settings, job.meta, threads)
                    running[slot] = (
                        subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT, env=env),
                        job,
                        log_file,
                    )
                    log(f"started {job.title} (worker {slot + 1}, log {job.folder / 'log.txt'})")
            for slot, (process, job, log_file) in list(running.items()):
                code = process.poll()
                if code is None:
                    continue
                log_file.close()
                del running[slot]
                error = None if code == 0 else f"worker exit code {code}, see {job.folder / 'log.txt'}"
                yield job, error
            time.sleep(POLL_SECONDS)
    finally:  # interrupted: stop the workers (Lightning finishes its step on SIGTERM; then SIGKILL)
        for process, _, log_file in running.values():
            process.terminate()
            try:
                process.wait(timeout=TERMINATE_SECONDS)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            log_file.close()


def visible_gpus(accelerator: str) -> list[str]:
    """CUDA device ids the runs may use (none on CPU runs), as CUDA_VISIBLE_DEVICES names them."""
    import torch

    if not uses_cuda(accelerator):
        return []
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible:
        return [device.strip() for device in visible.split(",") if device.strip()]
    return [str(index) for index in range(torch.cuda.device_count())]


def worker_environment(threads: int, slot: int, gpus: list[str]) -> dict[str, str]:
    """Environment of worker `slot`: its thread count and, with GPUs, one device (slot modulo count)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": str(threads)}
    if gpus:
        env["CUDA_VISIBLE_DEVICES"] = gpus[slot % len(gpus)]
    return env
