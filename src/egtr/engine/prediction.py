"""Prediction in one process, or in many through Lightning's predict loop (DDP over CPUs, GPUs, machines):
the engine side of `egtr predict --devices N` (architecture.md §3, engine/).

A `PredictionJob` (egtr.bulk's collection run) decides what each process predicts and keeps the results;
`run_prediction` runs the predictor's one forward loop, in this process when the run has one (without
Lightning, whose import alone holds about 180 MB), else inside `Trainer.predict` (egtr.engine.ddp_prediction):

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

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from egtr.inference.predictor import PredictionResult, SceneGraphPredictor

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
    if processes.world_size > 1 or processes.strategy != "auto" or "WORLD_SIZE" in os.environ:
        from egtr.engine.ddp_prediction import run_in_lightning

        return run_in_lightning(predictor, job, processes)
    return predict_alone(predictor, job, processes.threads)


def predict_alone(predictor: SceneGraphPredictor, job: PredictionJob, threads: int | None) -> int:
    """The run of one process: the steps of Lightning's predict loop (module docstring) without it."""
    import torch

    if threads:
        torch.set_num_threads(threads)
    try:
        inputs = job.assign(0, 1, lambda value: True)
        with torch.inference_mode():
            for batch in predictor.batches(predictor.prepared(inputs)):
                job.write(predictor.run_batch(batch))
    except BaseException:
        job.interrupt()
        raise
    job.finish([job.close()])
    return 0
