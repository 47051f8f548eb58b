"""DetectorCriterion (phase-one pre-training objective) on detector and EGTR outputs."""

from __future__ import annotations

import pytest
import torch

from egtr.config import EGTRConfig
from egtr.training import DetectorCriterion, EGTRCriterion

SIZES = {"num_classes": 4, "num_predicates": 3}


def test_terms_auxiliary_layers_and_total(random_outputs, random_targets, detector_outputs) -> None:
    outputs = detector_outputs(random_outputs(num_layers=3))
    targets = random_targets([3, 2], [1, 1], **SIZES)
    for target in targets:
        del target["relations"]  # the detector objective needs labels and boxes only
    losses = DetectorCriterion(EGTRConfig(num_labels=4))(outputs, targets)
    names = ("loss_ce", "loss_bbox", "loss_giou", "cardinality_error")
    assert set(losses) == {"loss", *names, *(f"{name}_{layer}" for name in names for layer in (0, 1))}
    total = sum(
        2 * losses[f"loss_ce{suffix}"] + 5 * losses[f"loss_bbox{suffix}"] + 2 * losses[f"loss_giou{suffix}"]
        for suffix in ("", "_0", "_1")
    )
    torch.testing.assert_close(losses["loss"], total)
    losses["loss"].backward()
    assert (
        torch.isfinite(outputs.decoder_logits.grad).all() and torch.isfinite(outputs.decoder_boxes.grad).all()
    )
    assert outputs.decoder_logits.grad[:, 0].abs().sum() > 0  # the auxiliary layers are trained


def test_same_detection_terms_as_egtr_criterion(random_outputs, random_targets) -> None:
    # the smoothing shift is a constant: the assignment, hence the detection terms, are the same
    outputs = random_outputs()
    targets = random_targets([3, 2], [2, 1], **SIZES)
    config = EGTRConfig(num_labels=4, num_rel_labels=3)
    detector = DetectorCriterion(config, auxiliary_loss=False)(outputs, targets)
    egtr = EGTRCriterion(config)(outputs, targets)
    assert set(detector) == {"loss", "loss_ce", "loss_bbox", "loss_giou", "cardinality_error"}
    for name in ("loss_ce", "loss_bbox", "loss_giou", "cardinality_error"):
        assert detector[name].item() == pytest.approx(egtr[name].item())


def test_images_without_boxes(random_outputs, random_targets, detector_outputs) -> None:
    outputs = detector_outputs(random_outputs())
    losses = DetectorCriterion(EGTRConfig(num_labels=4))(outputs, random_targets([0, 0], [0, 0], **SIZES))
    assert all(torch.isfinite(value) for value in losses.values())
    assert losses["loss_bbox"].item() == 0.0
    losses["loss"].backward()
    assert torch.isfinite(outputs.decoder_logits.grad).all()


def test_class_label_out_of_range(random_outputs, random_targets, detector_outputs) -> None:
    targets = random_targets([1, 1], [0, 0], **SIZES)
    targets[1]["labels"] = torch.tensor([4])
    with pytest.raises(ValueError, match=r"targets\[1\]: class label 4 is outside 0..3"):
        DetectorCriterion(EGTRConfig(num_labels=4))(detector_outputs(random_outputs()), targets)
