"""Validation/test metrics (R@K, mR@K, AP50, ...) computed from the module's post-processed predictions."""

from __future__ import annotations

import time
from typing import Any

import lightning as L
import torch.distributed as dist

from egtr.evaluation import evaluate_split
from egtr.evaluation.split import count_unreadable

LOGGED = (
    "R@20",
    "R@50",
    "R@100",
    "mR@20",
    "mR@50",
    "mR@100",
    "ngR@50",
    "ngmR@50",
    "zR@50",
    "AP50",
    "AP",
    "wmAP_rel",
    "wmAP_phr",
    "score_wtd",
)


class SceneGraphMetrics(L.Callback):
    """Every `every` validation epochs (0 = never) and at every test run, evaluate the predictions the
    module collected against the split's records and log the headline metrics (`val/R@50`, ...). An
    unreadable image is evaluated as an empty prediction and counted (`count_unreadable`). With each
    validation's metrics it logs `val/minutes`: the phase's training wall time so far (its validations
    included; carried over a resumption in the checkpoint), for learning curves against time.

    The latest full result is kept in `results[stage]` (metrics dict of `evaluate_split`).
    """

    def __init__(
        self,
        records: dict[str, list],
        num_classes: int,
        num_predicates: int,
        protocol: str,
        predicate_names: list[str],
        training_triplets: Any,
        every: int = 1,
    ) -> None:
        self.records, self.every, self.protocol = records, every, protocol
        self.num_classes, self.num_predicates = num_classes, num_predicates
        self.predicate_names, self.training_triplets = predicate_names, training_triplets
        self.results: dict[str, dict] = {}
        self._validations = 0
        self._started: float | None = None  # perf_counter at the start of this process's training
        self._earlier_seconds = 0.0  # training time of the runs before a resumption

    def training_seconds(self) -> float:
        """Wall seconds of training in this phase so far (earlier runs of a resumed phase included)."""
        running = 0.0 if self._started is None else time.perf_counter() - self._started
        return self._earlier_seconds + running

    def on_train_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self._started = time.perf_counter()

    def state_dict(self) -> dict[str, Any]:
        return {"training_seconds": self.training_seconds()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._earlier_seconds = float(state_dict.get("training_seconds", 0.0))

    def on_validation_epoch_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        due = self.every > 0 and not trainer.sanity_checking and self._validations % self.every == 0
        module.collect_predictions = due
        module.predictions = []

    def on_validation_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        self._validations += 1
        if module.collect_predictions:
            self._evaluate(module, "val")

    def on_test_epoch_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        module.collect_predictions = True
        module.predictions = []

    def on_test_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self._evaluate(module, "test")

    def _evaluate(self, module: L.LightningModule, stage: str) -> None:
        predictions = gather(module.predictions)
        module.predictions, module.collect_predictions = [], False
        evaluation = evaluate_split(
            self.records[stage],
            predictions,
            self.protocol,
            num_classes=self.num_classes,
            num_predicates=self.num_predicates,
            predicate_names=self.predicate_names,
            zero_shot_triplets=self.training_triplets,
        )
        result = count_unreadable(evaluation).metrics  # as `egtr evaluate --checkpoint` does
        self.results[stage] = result
        logged = {f"{stage}/{key}": float(result[key]) for key in LOGGED if _is_number(result.get(key))}
        if stage == "val":
            logged["val/minutes"] = self.training_seconds() / 60
        module.log_dict(logged, sync_dist=False, rank_zero_only=True)


def gather(items: list) -> list:
    """All processes' lists concatenated (every process gets the whole list); the list itself if not DDP."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return items
    parts: list[list] = [None] * dist.get_world_size()  # type: ignore[list-item]
    dist.all_gather_object(parts, items)
    merged, seen = [], set()
    for part in parts:
        for image_id, prediction in part:
            if image_id not in seen:  # DistributedSampler pads with repeated images
                seen.add(image_id)
                merged.append((image_id, prediction))
    return merged


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and value == value  # not NaN
