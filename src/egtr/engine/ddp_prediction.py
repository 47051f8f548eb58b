"""The prediction run of many processes (or of an explicit strategy) inside Lightning's predict loop: the
steps of egtr.engine.prediction's module docstring as a LightningDataModule, a LightningModule and a
callback, in processes Lightning's DDP strategy starts or joins."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import lightning as L
import torch
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch.strategies import DDPStrategy
from torch.utils.data import DataLoader, IterableDataset

from egtr.engine.prediction import PredictionJob, Processes
from egtr.inference.backend import TorchBackend
from egtr.inference.predictor import PredictionResult, SceneGraphPredictor

# how long a process waits in a collective for the others (joining, the final gather): generous, as the
# processes of a long run finish their parts at different times
PROCESS_GROUP_TIMEOUT = timedelta(hours=24)


def run_in_lightning(predictor: SceneGraphPredictor, job: PredictionJob, processes: Processes) -> int:
    """Predict `job`'s inputs with `predictor` in `processes` inside `Trainer.predict`; returns this
    process's global rank."""
    _quiet_lightning()
    callback = _JobCallback(job)
    try:
        trainer = L.Trainer(
            accelerator=processes.accelerator,
            devices=processes.devices,
            num_nodes=processes.num_nodes,
            strategy=_strategy(processes),
            precision="32-true",  # the backend runs its own precision
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,  # the job shows its own, in images
            enable_model_summary=False,
            use_distributed_sampler=False,  # the job splits the inputs itself
            callbacks=[callback],
        )
    except MisconfigurationException as error:  # e.g. more devices than the machine has
        raise ValueError(
            f"--devices {processes.devices}, --num-nodes {processes.num_nodes}: {error}"
        ) from error
    with warnings.catch_warnings():  # advice for training loops, and Lightning's own deprecations
        for message in (".*does not have many workers.*", ".*LeafSpec.*is deprecated.*"):
            warnings.filterwarnings("ignore", message=message)
        try:
            trainer.predict(
                _PredictorModule(predictor, processes.threads),
                datamodule=_JobData(job, predictor),
                return_predictions=False,
            )
        except SystemExit:  # Lightning exits after Ctrl-C (the job has committed what was finished)
            if isinstance(callback.exception, KeyboardInterrupt):
                raise KeyboardInterrupt from None
            raise
    return trainer.global_rank


def _quiet_lightning() -> None:
    """No Lightning banners (available accelerators, process registration) on the command's stderr."""
    for name in ("lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)


def _strategy(processes: Processes) -> Any:
    if processes.world_size == 1 and processes.strategy == "auto":
        return "auto"
    if processes.strategy not in ("auto", "ddp"):
        raise ValueError(f"prediction runs with the ddp strategy, not {processes.strategy!r}")
    return DDPStrategy(timeout=PROCESS_GROUP_TIMEOUT)


def _distributed() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def _gather(value: Any) -> list[Any]:
    """`value` of every process, in rank order (this process's alone without a process group)."""
    if not _distributed():
        return [value]
    gathered: list[Any] = [None] * torch.distributed.get_world_size()
    torch.distributed.all_gather_object(gathered, value)
    return gathered


def _agree(value: Any) -> bool:
    values = _gather(value)
    return all(other == values[0] for other in values)


class _Batches(IterableDataset):
    """This process's inputs, read ahead and grouped into batches by the predictor."""

    def __init__(self, predictor: SceneGraphPredictor, inputs: Sequence[Any]) -> None:
        self.predictor, self.inputs = predictor, inputs

    def __iter__(self):
        return self.predictor.batches(self.predictor.prepared(self.inputs))


def _as_is(batch: Any) -> Any:
    return batch


class _JobData(L.LightningDataModule):
    def __init__(self, job: PredictionJob, predictor: SceneGraphPredictor) -> None:
        super().__init__()
        self.job, self.predictor = job, predictor
        self.inputs: Sequence[Any] = ()

    def setup(self, stage: str) -> None:
        self.inputs = self.job.assign(self.trainer.global_rank, self.trainer.world_size, _agree)

    def predict_dataloader(self) -> DataLoader:
        # reading runs on the predictor's threads; a batch is a list of PreparedImage, handed over as is
        return DataLoader(_Batches(self.predictor, self.inputs), batch_size=None, collate_fn=_as_is)

    def transfer_batch_to_device(self, batch: Any, device: torch.device, dataloader_idx: int) -> Any:
        return batch  # the backend moves the pixels itself


class _PredictorModule(L.LightningModule):
    """The predictor inside Lightning's predict loop; it owns no parameters, so Lightning moves nothing."""

    def __init__(self, predictor: SceneGraphPredictor, threads: int | None) -> None:
        super().__init__()
        self.predictor, self.threads = predictor, threads

    def on_predict_start(self) -> None:
        if self.threads:  # Lightning's launcher divides the cores between processes unless told
            torch.set_num_threads(self.threads)
        if isinstance(self.predictor.backend, TorchBackend):
            self.predictor.backend.to(self.trainer.strategy.root_device)

    def predict_step(self, batch: list, batch_idx: int = 0) -> list[PredictionResult]:
        return self.predictor.run_batch(batch)


class _JobCallback(L.Callback):
    def __init__(self, job: PredictionJob) -> None:
        self.job = job
        self.exception: BaseException | None = None

    def on_predict_batch_end(self, trainer, module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        self.job.write(outputs)

    def on_predict_end(self, trainer, module) -> None:
        numbers = _gather(self.job.close())
        if trainer.is_global_zero:
            self.job.finish(numbers)

    def on_exception(self, trainer, module, exception: BaseException) -> None:
        self.exception = exception
        self.job.interrupt()
