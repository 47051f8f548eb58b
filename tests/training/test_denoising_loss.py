"""The denoising terms against hand-computed values; padding slots take no part; weights in the total."""

import math

import pytest
import torch

from egtr.config import EGTRConfig
from egtr.models.denoising import make_denoising_queries
from egtr.models.outputs import DenoisingOutput
from egtr.training import DetectorCriterion, EGTRCriterion
from egtr.training.denoising import denoising_terms
from egtr.training.targets import prepare_targets


def focal(logit: float, target: float, alpha: float = 0.25, gamma: float = 2.0) -> float:
    p = 1 / (1 + math.exp(-logit))
    p_truth = p if target else 1 - p
    return (alpha if target else 1 - alpha) * -math.log(p_truth) * (1 - p_truth) ** gamma


def two_image_case():
    """Image 0: objects of class 1 and 2; image 1: one object of class 0. 2 groups, 2 slots, 3 classes."""
    targets = [
        {"labels": torch.tensor([1, 2]), "boxes": torch.tensor([[0.3, 0.3, 0.2, 0.2], [0.7, 0.6, 0.2, 0.4]])},
        {"labels": torch.tensor([0]), "boxes": torch.tensor([[0.5, 0.5, 0.4, 0.4]])},
    ]
    queries = make_denoising_queries(
        [t["labels"] for t in targets], [t["boxes"] for t in targets], 3, 2, box_noise=0.0, label_noise=0.0
    )
    logits = torch.tensor([[0.5, -1.0, 2.0]]).repeat(2, 4, 1)  # [B, D, C], the same for every slot
    boxes = torch.stack([queries.boxes[0], queries.boxes[1]])  # exact boxes
    boxes[1, 0] = torch.tensor([0.5, 0.5, 0.2, 0.4])  # image 1 slot 0 (group 0): a wrong box
    output = DenoisingOutput(queries, logits[:, None].clone().requires_grad_(), boxes[:, None].clone())
    return targets, output


def test_terms_are_the_hand_computed_sums():
    targets, output = two_image_case()
    images = prepare_targets(targets, 3, None, torch.device("cpu"))
    terms = denoising_terms(output, images, num_boxes=3.0, focal_alpha=0.25, focal_gamma=2.0, auxiliary=False)
    # 6 real slots (3 objects x 2 groups); classes of the slots: 1, 2 (image 0), 0 (image 1), per group
    row = [0.5, -1.0, 2.0]
    expected_ce = 0.0
    for label in (1, 2, 0):
        expected_ce += 2 * sum(focal(value, c == label) for c, value in enumerate(row))
    assert terms["loss_dn_ce"].item() == pytest.approx(expected_ce / (3 * 2), rel=1e-5)
    # one wrong box: L1 = |0.5 - 0.5| + |0.5 - 0.5| + |0.2 - 0.4| + |0.4 - 0.4| = 0.2
    assert terms["loss_dn_bbox"].item() == pytest.approx(0.2 / 6, rel=1e-5)
    # GIoU of [0.4, 0.3, 0.6, 0.7] (area 0.08) inside [0.3, 0.3, 0.7, 0.7] (area 0.16): IoU 0.5, hull = union
    assert terms["loss_dn_giou"].item() == pytest.approx(0.5 / 6, rel=1e-5)


def test_padding_slots_take_no_part():
    targets, output = two_image_case()
    images = prepare_targets(targets, 3, None, torch.device("cpu"))
    before = denoising_terms(output, images, 3.0, 0.25, 2.0, auxiliary=False)
    padded = ~output.queries.valid  # image 1, slot 1 of each group
    with torch.no_grad():
        output.decoder_logits[padded[:, None]] = 9.0
        output.decoder_boxes[padded[:, None]] = torch.tensor([0.1, 0.9, 0.05, 0.05])
    after = denoising_terms(output, images, 3.0, 0.25, 2.0, auxiliary=False)
    for name, value in before.items():
        assert after[name].item() == pytest.approx(value.item()), name
    after["loss_dn_ce"].backward()
    assert (output.decoder_logits.grad[padded[:, None]] == 0).all()


@pytest.mark.parametrize("criterion_class", [EGTRCriterion, DetectorCriterion])
def test_criteria_add_the_weighted_terms_of_every_layer(criterion_class, random_outputs, random_targets):
    config = EGTRConfig.small(num_labels=4, num_rel_labels=3, auxiliary_loss=True)
    outputs = random_outputs(num_layers=3)
    targets = random_targets([3, 2], [2, 1])
    queries = make_denoising_queries(
        [t["labels"] for t in targets], [t["boxes"] for t in targets], 4, 2, box_noise=0.4, label_noise=0.2
    )
    generator = torch.Generator().manual_seed(3)
    outputs.denoising = DenoisingOutput(
        queries,
        torch.randn(2, 3, 6, 4, generator=generator),
        torch.rand(2, 3, 6, 4, generator=generator) * 0.5 + 0.25,
    )
    criterion = criterion_class(config)
    with_dn = criterion(outputs, targets)
    expected_names = {f"loss_dn_{t}{s}" for t in ("ce", "bbox", "giou") for s in ("", "_0", "_1")}
    assert expected_names <= set(with_dn)
    outputs.denoising = None
    without = criterion(outputs, targets)
    coefficient = {"ce": 2.0, "bbox": 5.0, "giou": 2.0}
    added = sum(coefficient[name.split("_")[2]] * with_dn[name] for name in expected_names)
    assert with_dn["loss"].item() == pytest.approx((without["loss"] + added).item(), rel=1e-5)
