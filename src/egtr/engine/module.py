"""LightningModule around the plain EGTR model and criterion.

Lightning only orchestrates: the model and the loss are plain PyTorch (architecture.md §2).
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch

from egtr.config import EGTRConfig
from egtr.engine.optim import adamw, parameter_groups
from egtr.engine.settings import DETECTOR_PHASES, TrainSettings
from egtr.inference.postprocess import PostprocessOptions, postprocess, to_numpy
from egtr.models.denoising import DenoisingQueries, make_denoising_queries
from egtr.models.egtr import EGTR
from egtr.training import DetectorCriterion, EGTRCriterion

# modules that the egtr phase initializes fresh (they get lr_initialized)
INITIALIZED_PREFIXES = ("relation_head.",)


class EGTRModule(L.LightningModule):
    """Trains one phase. `detector` and `detector_finetune` train only the detector (the forward skips the
    relation head); `egtr` and `finetune` train everything with three learning rates.

    Validation logs `validation_loss` (the dense loss, architecture.md §5.5) and, when the metrics callback
    sets `collect_predictions`, keeps post-processed predictions in `predictions` as (image_id, dict) pairs.
    """

    def __init__(self, config: EGTRConfig, settings: TrainSettings) -> None:
        super().__init__()
        self.model = EGTR(config)
        self.settings = settings
        self.detector_only = settings.phase in DETECTOR_PHASES
        self.criterion = DetectorCriterion(config) if self.detector_only else EGTRCriterion(config)
        if self.detector_only:  # not trained in this phase (and DDP must not wait for its gradients)
            self.model.relation_head.requires_grad_(False)
        self.postprocess_options = PostprocessOptions.for_protocol(settings.protocol)
        self.collect_predictions = False
        self.predictions: list[tuple[str, dict]] = []

    @property
    def config(self) -> EGTRConfig:
        return self.model.config

    def forward(
        self, pixel_values: torch.Tensor, pixel_mask: torch.Tensor, denoising: DenoisingQueries | None = None
    ):
        if self.detector_only and self.training:
            return self.model.detector(pixel_values, pixel_mask, denoising)
        return self.model(pixel_values, pixel_mask, denoising)

    def denoising_queries(self, targets: list[dict[str, Any]]) -> DenoisingQueries | None:
        """Noised copies of the batch's objects when training with query denoising, else None."""
        config = self.config
        if not (self.training and config.denoising_groups):
            return None
        return make_denoising_queries(
            [torch.as_tensor(target["labels"], device=self.device) for target in targets],
            [torch.as_tensor(target["boxes"], device=self.device) for target in targets],
            config.num_labels,
            config.denoising_groups,
            config.denoising_box_noise,
            config.denoising_label_noise,
        )

    def _losses(self, batch: dict[str, Any]) -> tuple[dict[str, torch.Tensor], Any]:
        targets = batch["targets"]
        outputs = self(batch["pixel_values"], batch["pixel_mask"], self.denoising_queries(targets))
        return self.criterion(outputs, targets), outputs

    def training_step(self, batch: dict[str, Any], batch_index: int) -> torch.Tensor | None:
        if batch["skipped"]:
            self.log(
                "train/skipped_images", float(batch["skipped"]), reduce_fx="sum", on_step=False, on_epoch=True
            )
        if not batch["targets"]:
            return None  # every image of the batch was unreadable
        losses, _ = self._losses(batch)
        size = len(batch["targets"])
        self.log("train/loss", losses["loss"], prog_bar=True, sync_dist=True, batch_size=size)
        self.log_dict({f"train/{k}": v for k, v in losses.items() if k != "loss"}, batch_size=size)
        return losses["loss"]

    def validation_step(self, batch: dict[str, Any], batch_index: int) -> None:
        self._evaluation_step(batch, "validation_loss")

    def test_step(self, batch: dict[str, Any], batch_index: int) -> None:
        self._evaluation_step(batch, "test_loss")

    def _evaluation_step(self, batch: dict[str, Any], loss_name: str) -> None:
        if not batch["targets"]:
            return
        losses, outputs = self._losses(batch)
        size = len(batch["targets"])
        self.log(loss_name, losses["loss"], prog_bar=True, sync_dist=True, batch_size=size)
        for key in ("loss_ce", "loss_bbox", "loss_giou", "loss_rel", "loss_connectivity"):
            if key in losses:
                self.log(f"{loss_name.split('_')[0]}/{key}", losses[key], sync_dist=True, batch_size=size)
        if self.collect_predictions:
            sizes = torch.stack([target["orig_size"] for target in batch["targets"]])
            predictions = postprocess(outputs, sizes, self.postprocess_options)
            for target, prediction in zip(batch["targets"], predictions):
                self.predictions.append((target["image_id"], to_numpy(prediction)))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        s = self.settings
        trained = self.model.detector if self.detector_only else self.model
        initialized = () if self.detector_only else INITIALIZED_PREFIXES
        groups = parameter_groups(trained, s.lr, s.lr_backbone, s.lr_initialized, initialized)
        return adamw(groups, s.weight_decay, s.adamw_implementation)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["egtr_config"] = self.config.to_dict()
        checkpoint["egtr_settings"] = self.settings.to_dict()
