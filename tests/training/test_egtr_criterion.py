"""EGTRCriterion end to end on fake outputs: terms, total, modes, switches, edge cases, errors."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from egtr.config import EGTRConfig
from egtr.models.outputs import EGTROutput
from egtr.training import EGTRCriterion
from egtr.training.targets import prepare_targets
from tests.training.relation_reference import official_relation_losses

SIZES = {"num_classes": 4, "num_predicates": 3}


def _config(**changes) -> EGTRConfig:
    return EGTRConfig(num_labels=4, num_rel_labels=3, decoder_layers=3, **changes)


def _assert_finite_gradients(outputs) -> None:
    for name in ("decoder_logits", "decoder_boxes", "rel_logits", "connectivity_logits"):
        tensor = getattr(outputs, name)
        if tensor is not None and tensor.grad is not None:
            assert torch.isfinite(tensor.grad).all(), name


def test_terms_and_weighted_total(random_outputs, random_targets) -> None:
    outputs = random_outputs()
    targets = random_targets([3, 2], [4, 1], **SIZES)
    losses = EGTRCriterion(_config())(outputs, targets)
    expected_keys = {"loss", "loss_ce", "loss_bbox", "loss_giou", "loss_rel", "loss_connectivity"}
    expected_keys |= {
        "cardinality_error",
        "uncertainty",
        "rel_gate_0",
        "rel_gate_1",
        "rel_gate_2",
        "rel_gate_3",
    }
    assert set(losses) == expected_keys
    total = (
        2 * losses["loss_ce"]
        + 5 * losses["loss_bbox"]
        + 2 * losses["loss_giou"]
        + 15 * losses["loss_rel"]
        + 30 * losses["loss_connectivity"]
    )
    torch.testing.assert_close(losses["loss"], total)
    for name in ("cardinality_error", "uncertainty", "rel_gate_0"):
        assert not losses[name].requires_grad
    gate_means = outputs.relation_gates.mean(dim=(0, 1, 2))
    for source in range(4):
        assert losses[f"rel_gate_{source}"].item() == pytest.approx(gate_means[source].item())
    losses["loss"].backward()
    _assert_finite_gradients(outputs)


def test_coefficients_are_configurable(random_outputs, random_targets) -> None:
    outputs = random_outputs()
    targets = random_targets([3, 2], [4, 1], **SIZES)
    config = _config(
        ce_loss_coefficient=1,
        bbox_loss_coefficient=0,
        giou_loss_coefficient=0,
        rel_loss_coefficient=0,
        connectivity_loss_coefficient=90,
    )
    losses = EGTRCriterion(config)(outputs, targets)
    torch.testing.assert_close(losses["loss"], losses["loss_ce"] + 90 * losses["loss_connectivity"])


@pytest.mark.parametrize("smoothing", [1e-14, 0.0])
def test_relation_terms_match_official_reference(random_outputs, random_targets, smoothing) -> None:
    outputs = random_outputs(batch_size=3, num_queries=6)
    targets = random_targets([4, 2, 3], [5, 0, 2], **SIZES)
    criterion = EGTRCriterion(_config(smoothing=smoothing, rel_sample_negatives=2, rel_sample_nonmatching=3))
    images = prepare_targets(targets, 4, 3, torch.device("cpu"))
    matches = criterion.matcher(
        outputs.logits, outputs.pred_boxes, [i.labels for i in images], [i.boxes for i in images]
    )
    for training in (True, False):
        criterion.train(training)
        losses = criterion(outputs, targets)
        expected_rel, expected_connectivity = official_relation_losses(
            outputs.rel_logits, outputs.connectivity_logits, matches, images, training, 2, 3, smoothing > 0
        )
        assert losses["loss_rel"].item() == pytest.approx(expected_rel, abs=1e-5)
        assert losses["loss_connectivity"].item() == pytest.approx(expected_connectivity, abs=1e-5)


def test_train_mode_samples_and_eval_mode_is_dense(random_outputs, random_targets) -> None:
    outputs = random_outputs(num_queries=6)
    targets = random_targets([3, 2], [1, 1], **SIZES)
    criterion = EGTRCriterion(_config(rel_sample_negatives=1, rel_sample_nonmatching=1))
    sampled = criterion.train()(outputs, targets)["loss_rel"]
    dense = criterion.eval()(outputs, targets)["loss_rel"]
    everything = EGTRCriterion(_config(rel_sample_negatives=None, rel_sample_nonmatching=None))(
        outputs, targets
    )
    assert sampled.item() != pytest.approx(dense.item())
    assert everything["loss_rel"].item() == pytest.approx(
        dense.item(), abs=1e-6
    )  # all entries of both images


def test_relation_loss_gives_no_gradient_to_detection_outputs(random_outputs, random_targets) -> None:
    # smoothing weights and matches come from the matcher without gradient
    outputs = random_outputs()
    targets = random_targets([3, 2], [4, 1], **SIZES)
    losses = EGTRCriterion(_config())(outputs, targets)
    (15 * losses["loss_rel"] + 30 * losses["loss_connectivity"]).backward()
    assert outputs.decoder_logits.grad is None and outputs.decoder_boxes.grad is None
    assert outputs.rel_logits.grad.abs().sum() > 0


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize(
    ("boxes", "relations"),
    [
        ([3, 2], [0, 2]),  # an image with objects but no relations
        ([0, 2], [0, 2]),  # an image with no objects
        ([3, 2], [0, 0]),  # no image has a relation
        ([0, 0], [0, 0]),  # no image has an object
    ],
)
def test_edge_cases_are_finite(random_outputs, random_targets, training, boxes, relations) -> None:
    outputs = random_outputs()
    targets = random_targets(boxes, relations, **SIZES)
    criterion = EGTRCriterion(_config()).train(training)
    losses = criterion(outputs, targets)
    for name, value in losses.items():
        assert torch.isfinite(value).all(), name
    if training and sum(relations) == 0:
        assert losses["loss_rel"].item() == 0.0
    losses["loss"].backward()
    _assert_finite_gradients(outputs)


def test_image_without_relations_adds_no_entries_but_counts_elsewhere(random_outputs, random_targets) -> None:
    outputs = random_outputs()
    both = random_targets([3, 2], [3, 0], **SIZES)
    criterion = EGTRCriterion(_config())
    losses = criterion(outputs, both)
    first_image = {
        field.name: getattr(outputs, field.name)[:1]
        for field in dataclasses.fields(outputs)
        if getattr(outputs, field.name) is not None
    }
    first_only = criterion(EGTROutput(**first_image), both[:1])
    assert losses["loss_rel"].item() == pytest.approx(first_only["loss_rel"].item(), abs=1e-6)
    assert losses["loss_connectivity"].item() != pytest.approx(first_only["loss_connectivity"].item())


def test_duplicate_triplets_collapse_and_multi_label_pairs_count_twice(
    random_outputs, random_targets
) -> None:
    outputs = random_outputs()
    targets = random_targets([3, 2], [0, 0], **SIZES)
    targets[0]["relations"] = torch.tensor([[0, 1, 2], [0, 1, 0]])  # two predicates on one pair
    targets[1]["relations"] = torch.tensor([[1, 0, 1]])
    criterion = EGTRCriterion(_config(rel_sample_negatives=0, rel_sample_nonmatching=0))
    plain = criterion(outputs, targets)
    targets[0]["relations"] = torch.tensor([[0, 1, 2], [0, 1, 0], [0, 1, 2], [0, 1, 0]])
    duplicated = criterion(outputs, targets)
    assert duplicated["loss_rel"].item() == pytest.approx(plain["loss_rel"].item(), abs=1e-7)
    # with no sampled negatives the loss is the mean over exactly the 3 positive entries
    images = prepare_targets(targets, 4, 3, torch.device("cpu"))
    expected, _ = official_relation_losses(
        outputs.rel_logits,
        outputs.connectivity_logits,
        _matches(criterion, outputs, images),
        images,
        True,
        0,
        0,
        True,
    )
    assert plain["loss_rel"].item() == pytest.approx(expected, abs=1e-6)


def _matches(criterion, outputs, images):
    return criterion.matcher(
        outputs.logits, outputs.pred_boxes, [i.labels for i in images], [i.boxes for i in images]
    )


def test_uncertainty_log(random_outputs, random_targets) -> None:
    outputs = random_outputs()
    targets = random_targets([3, 2], [2, 1], **SIZES)
    criterion = EGTRCriterion(_config())
    images = prepare_targets(targets, 4, 3, torch.device("cpu"))
    values = []
    for match, image in zip(_matches(criterion, outputs, images), images):
        uncertainty = {t: c for t, c in zip(match.target_index.tolist(), match.cost.sigmoid().tolist())}
        for subject, object_, _ in set(map(tuple, image.relations.tolist())):
            values.append(uncertainty[subject] * uncertainty[object_])
    assert criterion(outputs, targets)["uncertainty"].item() == pytest.approx(
        sum(values) / len(values), rel=1e-5
    )


def test_without_connectivity(random_outputs, random_targets) -> None:
    outputs = random_outputs(connectivity=False)
    targets = random_targets([3, 2], [2, 1], **SIZES)
    losses = EGTRCriterion(_config(use_connectivity=False))(outputs, targets)
    assert losses["loss_connectivity"].item() == 0.0
    total = (
        2 * losses["loss_ce"] + 5 * losses["loss_bbox"] + 2 * losses["loss_giou"] + 15 * losses["loss_rel"]
    )
    torch.testing.assert_close(losses["loss"], total)
    with pytest.raises(ValueError, match="connectivity_logits is None"):
        EGTRCriterion(_config())(outputs, targets)


def test_auxiliary_losses(random_outputs, random_targets) -> None:
    outputs = random_outputs(num_layers=3)
    targets = random_targets([3, 2], [2, 1], **SIZES)
    losses = EGTRCriterion(_config(auxiliary_loss=True))(outputs, targets)
    plain = EGTRCriterion(_config())(outputs, targets)
    auxiliary = sum(
        2 * losses[f"loss_ce_{layer}"] + 5 * losses[f"loss_bbox_{layer}"] + 2 * losses[f"loss_giou_{layer}"]
        for layer in (0, 1)
    )
    assert "loss_ce_2" not in losses and "cardinality_error_1" in losses
    torch.testing.assert_close(losses["loss"], plain["loss"] + auxiliary)


def test_bad_targets_name_the_image_and_field(random_outputs, random_targets) -> None:
    outputs = random_outputs()
    criterion = EGTRCriterion(_config())
    targets = random_targets([3, 2], [2, 1], **SIZES)
    targets[1]["relations"] = torch.tensor([[0, 2, 0]])
    with pytest.raises(ValueError, match=r"targets\[1\]: relation box index 2 is outside 0..1"):
        criterion(outputs, targets)
    targets = random_targets([3, 2], [2, 1], **SIZES)
    targets[0]["relations"] = torch.tensor([[0, 1, 3]])
    with pytest.raises(ValueError, match=r"targets\[0\]: predicate 3 is outside 0..2"):
        criterion(outputs, targets)
    targets = random_targets([3, 2], [2, 1], **SIZES)
    targets[0]["boxes"] = torch.rand(2, 4)
    with pytest.raises(ValueError, match=r"targets\[0\]\['boxes'\] must have shape \[3,4\]"):
        criterion(outputs, targets)
    targets = random_targets([3, 2], [2, 1], **SIZES)
    del targets[1]["labels"]
    with pytest.raises(ValueError, match=r"targets\[1\] has no 'labels' field"):
        criterion(outputs, targets)
    with pytest.raises(ValueError, match="got 1 target dicts for a batch of 2"):
        criterion(outputs, random_targets([1], [0], **SIZES))
    with pytest.raises(ValueError, match=r"targets\[0\] has 6 boxes but the model has only 5"):
        criterion(outputs, random_targets([6, 1], [0, 0], **SIZES))


def test_invalid_sampling_ratio() -> None:
    with pytest.raises(ValueError, match="rel_sample_negatives"):
        EGTRCriterion(_config(rel_sample_negatives=-1))


def test_targets_as_lists_and_empty_relations_of_any_shape(random_outputs, random_targets) -> None:
    outputs = random_outputs()
    targets = random_targets([3, 2], [2, 1], **SIZES)
    reference = EGTRCriterion(_config())(outputs, targets)
    as_lists = [
        {key: value.tolist() for key, value in target.items() if key != "image_id"} for target in targets
    ]
    torch.testing.assert_close(EGTRCriterion(_config())(outputs, as_lists)["loss"], reference["loss"])
    for empty in ([], torch.zeros(0), torch.zeros(0, 3)):
        targets[1]["relations"] = empty
        assert torch.isfinite(EGTRCriterion(_config())(outputs, targets)["loss"])
