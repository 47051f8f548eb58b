"""Prediction through Lightning's predict loop, in one process or in many (DDP over CPUs, GPUs, machines):
the engine side of `egtr predict --devices N` (architecture.md §3, engine/).

A `PredictionJob` (egtr.bulk's collection run) decides what each process predicts and keeps the results;
`run_prediction` runs the predictor's one forward loop inside `Trainer.predict`:

- each process, once its process group is up, calls `job.assign(rank, world_size, agree)` and gets its own
  inputs back: the job splits the work (no sampler pads or repeats anything, `use_distributed_sampler` is
  off); `agree(value)` tells whether every process computed the same `value` (a collective);
- the inputs are read and preprocessed ahead of the model on the predictor's reader threads and grouped into
  batches by `SceneGraphPredictor.batches` (only equal sizes share a batch), as in `iter_predict`;
- each batch's `PredictionResult`s go to `job.write` in the model's thread, `index` being the position in
  the inputs `assign` returned;
- at the end each process calls `job.close()` (its numbers, a plain dict), the numbers of all processes are
  gathered, and the first process calls `job.finish(numbers)`; an exception or Ctrl-C calls
  `job.interrupt()` first.

With more than one process, Lightning's DDP strategy starts them by running the same command line again
(its script launcher: one process per device on this machine, `--num-nodes` machines each started with
NODE_RANK, MASTER_ADDR and MASTER_PORT), or joins processes started by torchrun or SLURM. The network's
device is the one Lightning gives the process (cuda:LOCAL_RANK, or the CPU).
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Protocol

import lightning as L
import torch
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch.strategies import DDPStrategy
from torch.utils.data import DataLoader, IterableDataset

from egtr.inference.backend import TorchBackend
from egtr.inference.predictor import PredictionResult, SceneGraphPredictor

# how long a process waits in a collective for the others (joining, the final gather): generous, as the
# processes of a long run finish their parts at different times
PROCESS_GROUP_TIMEOUT = timedelta(hours=24)
# variables that launchers (Lightning's, torchrun, SLURM, jsrun) set to a process's place in the run
RANK_VARIABLES = ("RANK", "LOCAL_RANK", "NODE_RANK", "GROUP_RANK", "SLURM_PROCID", "JSM_NAMESPACE_RANK")


@dataclass(frozen=True)
class Processes:
    """Where a prediction runs: Lightning's accelerator ("cpu" or "cuda"), devices per node (a count, or the
    GPU indices), nodes, strategy ("auto": one process, or DDP for more), torch threads per process."""

    accelerator: str = "cpu"
    devices: int | list[int] = 1
    num_nodes: int = 1
    strategy: str = "auto"
    threads: int | None = None

    @property
    def world_size(self) -> int:
        per_node = self.devices if isinstance(self.devices, int) else len(self.devices)
        return per_node * self.num_nodes

    def local_device(self) -> str | None:
        """The GPU Lightning will give this process, known before the launch from the launcher's LOCAL_RANK
        (SLURM: SLURM_LOCALID), so that a model loaded there is not moved; None on CPUs."""
        if self.accelerator == "cpu":
            return None
        local = int(os.environ.get("LOCAL_RANK", os.environ.get("SLURM_LOCALID", "0")))
        return f"cuda:{self.devices[local] if isinstance(self.devices, list) else local}"


class PredictionJob(Protocol):
    """What a prediction run does with its inputs and results (see the module docstring)."""

    def assign(self, rank: int, world_size: int, agree: Callable[[Any], bool]) -> Sequence[Any]: ...

    def write(self, results: list[PredictionResult]) -> None: ...

    def close(self) -> dict: ...

    def finish(self, numbers: list[dict]) -> None: ...

    def interrupt(self) -> None: ...


def first_process() -> bool:
    """Whether this process is (or, before the launch, will be) global rank 0: no launcher variable names
    another place. The processes Lightning starts for the other devices, and the other machines' (their
    NODE_RANK), are not."""
    return all(os.environ.get(name, "0") == "0" for name in RANK_VARIABLES)


def run_prediction(predictor: SceneGraphPredictor, job: PredictionJob, processes: Processes) -> int:
    """Predict `job`'s inputs with `predictor` in `processes`; returns this process's global rank."""
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
