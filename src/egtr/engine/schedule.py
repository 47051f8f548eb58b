"""Learning-rate schedules over a training budget: the official presets keep constant rates.

`lr_schedule="cosine"` (an option, used by the demo) multiplies every parameter group's rate by
    warm-up(step) x (1 + cos(pi x progress)) / 2,
where warm-up(step) = min(1, (step + 1) / warmup_steps) rises linearly over the first `warmup_steps`
optimizer steps (1 without warm-up) and progress in [0, 1] is the share of the training budget spent: the
steps done out of `max_steps`, or the time spent out of `max_minutes` when the budget is a time, or the
steps out of the epochs' steps. `lr_schedule="step"` keeps the warmed-up rates until `LR_DROP_AT` of the
budget, then multiplies them by `LR_DROP_FACTOR` (one late drop, as DETR's schedule ends).
`lr_schedule="constant"` with `warmup_steps` > 0 warms up, then stays.
The rate is a function of the step count (and of the time spent, restored from the checkpoint by
Lightning's Timer), so a resumed run continues the same schedule.
"""

from __future__ import annotations

import math

import lightning as L
from lightning.pytorch.callbacks import Timer

from egtr.engine.settings import LR_DROP_AT, LR_DROP_FACTOR, LR_SCHEDULES


def lr_factor(schedule: str, step: int, warmup_steps: int, progress: float) -> float:
    """The multiplier of the base rates at optimizer step `step` (0-based) with `progress` of the budget."""
    if schedule not in LR_SCHEDULES:
        raise ValueError(f"lr_schedule must be one of {LR_SCHEDULES}, got {schedule!r}")
    warm = min(1.0, (step + 1) / warmup_steps) if warmup_steps > 0 else 1.0
    if schedule == "constant":
        return warm
    if schedule == "step":
        return warm * (LR_DROP_FACTOR if progress >= LR_DROP_AT else 1.0)
    return warm * 0.5 * (1.0 + math.cos(math.pi * min(max(progress, 0.0), 1.0)))


def budget_progress(trainer: L.Trainer) -> float:
    """Share of the training budget spent: the largest of steps / max_steps, time / max_time and steps /
    the epochs' steps (whichever of them bound the run)."""
    shares = [0.0]
    if trainer.max_steps > 0:
        shares.append(trainer.global_step / trainer.max_steps)
    for callback in trainer.callbacks:
        if isinstance(callback, Timer) and callback._duration:
            shares.append(callback.time_elapsed("train") / callback._duration)
    if trainer.max_steps <= 0 and trainer.max_epochs and trainer.max_epochs > 0:
        total = trainer.estimated_stepping_batches
        if math.isfinite(total) and total > 0:
            shares.append(trainer.global_step / total)
    return max(shares)


class LearningRateSchedule(L.Callback):
    """Sets every parameter group's rate before each training batch: `initial_lr` x `lr_factor`."""

    def __init__(self, schedule: str, warmup_steps: int) -> None:
        lr_factor(schedule, 0, warmup_steps, 0.0)  # checks the name
        self.schedule, self.warmup_steps = schedule, warmup_steps

    def on_train_batch_start(self, trainer: L.Trainer, module: L.LightningModule, batch, batch_index) -> None:
        factor = lr_factor(self.schedule, trainer.global_step, self.warmup_steps, budget_progress(trainer))
        for optimizer in trainer.optimizers:
            for group in optimizer.param_groups:
                group.setdefault("initial_lr", group["lr"])
                group["lr"] = group["initial_lr"] * factor
