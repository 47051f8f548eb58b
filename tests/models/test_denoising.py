"""Query denoising: the matching queries are untouched by the denoising queries; noise and mask layout."""

import pytest
import torch

from egtr.config import EGTRConfig
from egtr.models.denoising import DenoisingQueries, make_denoising_queries
from egtr.models.egtr import EGTR

from ..torch_threads import one_torch_thread  # noqa: F401

pytestmark = pytest.mark.usefixtures("one_torch_thread")

OUTPUTS = (
    "logits",
    "pred_boxes",
    "rel_logits",
    "connectivity_logits",
    "attention_queries",
    "attention_keys",
    "decoder_logits",
    "decoder_boxes",
    "last_hidden_state",
    "relation_gates",
)


@pytest.fixture(scope="module")
def denoising_model() -> EGTR:
    torch.manual_seed(0)
    model = EGTR(EGTRConfig.small(denoising_groups=3, dropout=0.0, num_queries=8, decoder_layers=2))
    model.set_frequency_statistics(torch.randint(0, 5, (13, 13, 6)))
    return model.eval()


def batch() -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor], list[torch.Tensor]]:
    generator = torch.Generator().manual_seed(1)
    pixels = torch.randn(2, 3, 64, 80, generator=generator)
    mask = torch.ones(2, 64, 80, dtype=torch.bool)
    mask[1, 48:, :] = False
    mask[1, :, 60:] = False
    labels = [torch.tensor([3, 0, 11]), torch.tensor([5])]
    boxes = [
        torch.tensor([[0.3, 0.3, 0.2, 0.3], [0.6, 0.5, 0.3, 0.2], [0.5, 0.8, 0.4, 0.2]]),
        torch.tensor([[0.5, 0.5, 0.5, 0.5]]),
    ]
    return pixels, mask, labels, boxes


def test_matching_queries_equal_the_model_without_denoising(denoising_model):
    pixels, mask, labels, boxes = batch()
    queries = make_denoising_queries(labels, boxes, 12, 3, box_noise=0.4, label_noise=0.2)
    with torch.no_grad():
        plain = denoising_model(pixels, mask)
        denoised = denoising_model(pixels, mask, queries)
        # the same weights in a model built without query denoising
        config = denoising_model.config.replace(denoising_groups=0)
        without = EGTR(config).eval()
        state = {k: v for k, v in denoising_model.state_dict().items() if ".denoising." not in k}
        without.load_state_dict(state, strict=True)
        reference = without(pixels, mask)
    assert plain.denoising is None and reference.denoising is None
    for name in OUTPUTS:  # outputs, and the self-attention q/k EGTR reads, of every decoder layer
        torch.testing.assert_close(getattr(denoised, name), getattr(plain, name), rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(getattr(plain, name), getattr(reference, name), rtol=0, atol=0)
    dn = denoised.denoising
    assert dn.decoder_logits.shape == (2, 2, 9, 12) and dn.decoder_boxes.shape == (2, 2, 9, 4)


def test_without_the_mask_the_matching_queries_would_change(denoising_model, monkeypatch):
    # the test above is only worth something if the denoising queries could reach the matching ones
    pixels, mask, labels, boxes = batch()
    queries = make_denoising_queries(labels, boxes, 12, 3, box_noise=0.4, label_noise=0.2)
    monkeypatch.setattr(
        DenoisingQueries, "attention_mask", lambda self, n: torch.ones(1, 1, n + 9, n + 9, dtype=torch.bool)
    )
    with torch.no_grad():
        plain = denoising_model(pixels, mask)
        unmasked = denoising_model(pixels, mask, queries)
    assert (unmasked.attention_queries[:, 1] - plain.attention_queries[:, 1]).abs().max() > 1e-3
    assert (unmasked.logits - plain.logits).abs().max() > 1e-3


def test_attention_mask_layout():
    labels = [torch.tensor([1, 2]), torch.tensor([4])]
    boxes = [torch.full((2, 4), 0.5), torch.full((1, 4), 0.5)]
    queries = make_denoising_queries(labels, boxes, 12, 2, box_noise=0.0, label_noise=0.0)
    mask = queries.attention_mask(3)[:, 0].int()
    # 3 matching queries, then group 0 (slots 0, 1), group 1 (slots 0, 1); image 1 has one object
    expected_image_0 = torch.tensor(
        [
            [1, 1, 1, 0, 0, 0, 0],
            [1, 1, 1, 0, 0, 0, 0],
            [1, 1, 1, 0, 0, 0, 0],
            [1, 1, 1, 1, 1, 0, 0],
            [1, 1, 1, 1, 1, 0, 0],
            [1, 1, 1, 0, 0, 1, 1],
            [1, 1, 1, 0, 0, 1, 1],
        ]
    )
    expected_image_1 = expected_image_0.clone()
    expected_image_1[:, [4, 6]] = 0  # slot 1 is padding: nobody attends to it
    assert torch.equal(mask[0], expected_image_0) and torch.equal(mask[1], expected_image_1)
    assert queries.valid.tolist() == [[True, True, True, True], [True, False, True, False]]


def test_noise_without_noise_copies_the_objects_and_bounds_with_noise():
    labels = [torch.arange(6)]
    boxes = [torch.tensor([[0.5, 0.5, 0.2, 0.4]]).repeat(6, 1)]
    exact = make_denoising_queries(labels, boxes, 12, 2, box_noise=0.0, label_noise=0.0)
    assert torch.equal(exact.labels[0], torch.arange(6).repeat(2))
    torch.testing.assert_close(exact.boxes[0], boxes[0].repeat(2, 1))

    torch.manual_seed(0)
    many = [torch.zeros(100, dtype=torch.long)]
    noised = make_denoising_queries(many, [boxes[0][:1].repeat(100, 1)], 12, 50, 0.4, 0.2)
    shift = (noised.boxes[0, :, :2] - torch.tensor([0.5, 0.5])).abs()
    assert (shift <= 0.4 * torch.tensor([0.2, 0.4]) / 2 + 1e-6).all()
    scale = noised.boxes[0, :, 2:] / torch.tensor([0.2, 0.4])
    assert ((scale >= 0.6 - 1e-6) & (scale <= 1.4 + 1e-6)).all()
    assert shift.max() > 0.035 and scale.min() < 0.65 and scale.max() > 1.35  # the range is used
    changed = (noised.labels[0] != 0).float().mean()  # a flip draws any of 12 classes, 0 included
    assert changed.item() == pytest.approx(0.2 * 11 / 12, abs=0.02)


def test_no_objects_no_denoising_queries():
    assert (
        make_denoising_queries([torch.zeros(0, dtype=torch.long)], [torch.zeros(0, 4)], 12, 3, 0.4, 0.2)
        is None
    )


def test_presets_have_no_denoising_weights():
    names = EGTR(EGTRConfig.small()).state_dict()
    assert not any(".denoising." in name for name in names)
    with pytest.raises(ValueError, match="denoising_groups > 0"):
        pixels, mask, labels, boxes = batch()
        EGTR(EGTRConfig.small())(pixels, mask, make_denoising_queries(labels, boxes, 12, 1, 0.4, 0.2))
