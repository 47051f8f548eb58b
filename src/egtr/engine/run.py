"""Run a training phase, or the whole recipe, with Lightning: the only place that builds a training Trainer
(prediction.py builds the prediction one)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint, RichProgressBar, TQDMProgressBar
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from lightning.pytorch.plugins.io import TorchCheckpointIO

from egtr.checkpoints import (
    load_backbone_file,
    load_model,
    load_state_strictly,
    save_model,
    torch_load_safely,
)
from egtr.config import EGTRConfig
from egtr.devices import uses_cuda
from egtr.engine.curves import keep_previous_log, plot_loss_curves
from egtr.engine.datamodule import SceneGraphDataModule
from egtr.engine.metrics import SceneGraphMetrics
from egtr.engine.module import EGTRModule
from egtr.engine.schedule import LearningRateSchedule
from egtr.engine.settings import FINETUNE_PHASES, TrainSettings, merge, preset
from egtr.evaluation import write_report
from egtr.files import write_atomically

MODEL_PRESETS = {
    "visual_genome": EGTRConfig.visual_genome,
    "open_images": EGTRConfig.open_images,
    "synthetic": lambda: EGTRConfig.small(backbone_norm="batch", backbone_frozen_stages=0),
}


class AtomicCheckpointIO(TorchCheckpointIO):
    """Writes each checkpoint to a temporary file first, then renames it: a kill never leaves half a file."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None) -> None:
        if storage_options is not None:
            raise TypeError("AtomicCheckpointIO takes no storage_options")
        write_atomically(path, lambda stream: torch.save(checkpoint, stream))


@dataclass
class PhaseResult:
    out: Path
    model_path: Path  # best weights in this project's format
    best_checkpoint: Path | None
    metrics: dict  # test-split metrics of the best weights


def model_config(settings: TrainSettings, data: SceneGraphDataModule) -> tuple[EGTRConfig, Any]:
    """The phase's model config (and the model to initialize from, if any), sized to the dataset."""
    dataset_fields = {
        "num_labels": len(data.class_names),
        "num_rel_labels": len(data.predicate_names),
        "class_names": list(data.class_names),
        "predicate_names": list(data.predicate_names),
    }
    source = load_model(settings.init_from) if settings.init_from else None
    base = source.config if source is not None else MODEL_PRESETS[settings.dataset]()
    return base.replace(**{**settings.model, **dataset_fields}), source


DENOISING_PREFIX = "detector.denoising."  # training-only embeddings of query denoising (models/denoising.py)


def initialize(module: EGTRModule, source: Any, settings: TrainSettings, data: SceneGraphDataModule) -> None:
    """Copy weights from the previous phase and fill the frequency statistics. The query-denoising
    embeddings go along when both phases denoise; otherwise they are dropped, or start fresh."""
    if source is not None:
        state = source.state_dict()
        if module.model.detector.denoising is None:
            state = {k: v for k, v in state.items() if not k.startswith(DENOISING_PREFIX)}
        if settings.phase in FINETUNE_PHASES:
            load_state_strictly(module.model, state, str(settings.init_from), (DENOISING_PREFIX,))
        else:  # detector weights only; the relation head starts fresh (architecture.md §5.7)
            detector = {k: v for k, v in state.items() if k.startswith("detector.")}
            load_state_strictly(
                module.model,
                detector,
                str(settings.init_from),
                ignore_prefixes=("relation_head.", "frequency_bias.", DENOISING_PREFIX),
            )
    if settings.backbone_weights:
        load_backbone_file(module.model, settings.backbone_weights)
    if settings.phase != "finetune":
        module.model.set_frequency_statistics(torch.as_tensor(data.fg_matrix))


def device_count(settings: TrainSettings) -> int:
    """Devices per node the Trainer will use (resolving "auto" the way Lightning does)."""
    if isinstance(settings.devices, int):
        return settings.devices
    if str(settings.devices).isdigit():
        return int(settings.devices)
    return torch.cuda.device_count() if uses_cuda(settings.accelerator) else 1


def build_trainer(settings: TrainSettings, out: Path, callbacks: list) -> L.Trainer:
    step_validation = isinstance(settings.val_check_interval, int) and settings.val_check_interval > 1
    interactive = os.isatty(2)
    return L.Trainer(
        default_root_dir=out,
        accelerator=settings.accelerator,
        devices=settings.devices,
        num_nodes=settings.num_nodes,
        strategy=settings.strategy,
        precision=settings.precision,
        max_epochs=settings.max_epochs,
        max_steps=settings.max_steps,
        max_time=timedelta(minutes=settings.max_minutes) if settings.max_minutes else None,
        gradient_clip_val=settings.gradient_clip or None,
        gradient_clip_algorithm="norm",
        accumulate_grad_batches=settings.accumulation(device_count(settings)),
        val_check_interval=settings.val_check_interval,
        check_val_every_n_epoch=None if step_validation else 1,
        log_every_n_steps=settings.log_every,
        logger=[CSVLogger(out, name="logs", version=""), TensorBoardLogger(out, name="logs", version="")],
        callbacks=[
            *callbacks,
            RichProgressBar() if interactive else TQDMProgressBar(refresh_rate=settings.log_every),
        ],
        plugins=[AtomicCheckpointIO()],
        deterministic="warn",
        num_sanity_val_steps=0,
        enable_model_summary=False,
    )


def run_phase(settings: TrainSettings) -> PhaseResult:
    """Train one phase; write checkpoints, logs, the best model (`model.safetensors`) and its test report."""
    out = Path(settings.out)
    out.mkdir(parents=True, exist_ok=True)
    L.seed_everything(settings.seed, workers=True, verbose=False)
    data = SceneGraphDataModule(settings)
    config, source = model_config(settings, data)
    module = EGTRModule(config, settings)
    initialize(module, source, settings, data)
    settings.save(out / "train_settings.json")
    config.to_json(out / "model_config.json")

    checkpoints = ModelCheckpoint(
        dirpath=out / "checkpoints",
        filename="epoch={epoch:02d}-step={step}-validation_loss={validation_loss:.4f}",
        monitor="validation_loss",
        mode="min",
        save_top_k=1,
        save_last=True,
        auto_insert_metric_name=False,
    )
    metrics = SceneGraphMetrics(
        {"val": data.records["val"], "test": data.records["test"]},
        config.num_labels,
        config.num_rel_labels,
        settings.protocol,
        data.predicate_names,
        data.training_triplets(),
        every=settings.metrics_every,
    )
    callbacks = [
        checkpoints,
        metrics,
        # strict=False: a run resumed right after its epoch-end validation has no fresh validation_loss yet
        EarlyStopping("validation_loss", patience=settings.patience, mode="min", strict=False),
    ]
    if settings.lr_schedule != "constant" or settings.warmup_steps:
        callbacks.append(LearningRateSchedule(settings.lr_schedule, settings.warmup_steps))
    last = out / "checkpoints" / "last.ckpt"
    resume = last if settings.resume and last.is_file() else None
    if resume:
        keep_previous_log(out / "logs")
    trainer = build_trainer(settings, out, callbacks)
    trainer.fit(module, datamodule=data, ckpt_path=resume, weights_only=True)  # never unpickle objects

    best = Path(checkpoints.best_model_path) if checkpoints.best_model_path else None
    if best is not None:
        module.load_state_dict(torch_load_safely(best)["state_dict"])
    trainer.test(module, datamodule=data, verbose=False)
    model_path = out / "model.safetensors"
    test_metrics = metrics.results.get("test", {})
    if trainer.is_global_zero:
        save_model(module.model, model_path, {"phase": settings.phase})
        report_settings = {
            "phase": settings.phase,
            "checkpoint": str(best) if best else None,
            "dataset": settings.data or "synthetic world",
            "split": "test",
            "protocol": settings.protocol,
            "eval_size": [settings.eval_size, settings.eval_max_size],
        }
        write_report(out / "report", test_metrics, report_settings, data.predicate_names)
        plot_loss_curves(out / "logs", out / "report" / "loss_curves.png")
    return PhaseResult(out, model_path, best, test_metrics)


def run_recipe(
    dataset: str,
    phases: list[str],
    out: str,
    overrides: dict[str, Any],
    phase_overrides: dict[str, dict[str, Any]] | None = None,
) -> list[PhaseResult]:
    """Run phases in order, each starting from the previous phase's best model."""
    results: list[PhaseResult] = []
    for phase in phases:
        settings = merge(preset(dataset, phase), {**overrides, **(phase_overrides or {}).get(phase, {})})
        settings = settings.replace(out=str(Path(out) / phase))
        if results:
            settings = settings.replace(init_from=str(results[-1].model_path))
        results.append(run_phase(settings))
    return results
