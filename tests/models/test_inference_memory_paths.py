"""The inference paths that hold less memory against the paths they replace: the encoder's queries in chunks
(written over the encoder's own input) and the bottleneck's last convolution added to the shortcut in place,
in chunks of output channels. Chunk sizes are made tiny here, so that small inputs take many chunks."""

import pytest
import torch

from egtr.config import EGTRConfig
from egtr.models import backbone, relation_head, stripes, transformer
from egtr.models.egtr import EGTR
from tests.numerics import assert_close_to_scale

OUTPUTS = ("logits", "pred_boxes", "rel_logits", "connectivity_logits")


def model_and_batch(depth: int) -> tuple[EGTR, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    model = EGTR(EGTRConfig.small(backbone_depth=depth, num_queries=12)).eval()
    with torch.no_grad():  # spread sampling points and non-trivial norms, as in a trained model
        for name, parameter in model.named_parameters():
            if "sampling_offsets.weight" in name:
                parameter.normal_(std=0.3)
        for module in model.modules():
            if isinstance(module, backbone.FrozenBatchNorm2d):
                module.weight.uniform_(0.5, 1.5)
                module.running_mean.normal_(std=0.2)
    pixels = torch.randn(2, 3, 72, 104, generator=torch.Generator().manual_seed(1))
    mask = torch.ones(2, 72, 104, dtype=torch.bool)
    mask[1, 50:] = False  # a padded second image: masked values in the chunks
    mask[1, :, 80:] = False
    return model, pixels, mask


def outputs(model: EGTR, pixels: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
    with torch.inference_mode():
        output = model(pixels.clone(), mask)
    return {name: getattr(output, name) for name in OUTPUTS}


@pytest.mark.parametrize("depth", [18, 50])
def test_chunked_encoder_and_in_place_bottlenecks_equal_the_whole_paths(depth, monkeypatch):
    model, pixels, mask = model_and_batch(depth)
    monkeypatch.setattr(transformer, "ENCODER_CHUNK", 10**9)
    monkeypatch.setattr(backbone, "CHUNK_BYTES", 1 << 40)
    expected = outputs(model, pixels, mask)
    monkeypatch.setattr(transformer, "ENCODER_CHUNK", 37)  # 37 does not divide the 7,000-odd tokens
    monkeypatch.setattr(backbone, "CHUNK_BYTES", 4096)  # every bottleneck adds its last conv in chunks
    chunked = []
    original = backbone.add_conv_norm
    monkeypatch.setattr(backbone, "add_conv_norm", lambda *a: chunked.append(1) or original(*a))
    got = outputs(model, pixels, mask)
    assert bool(chunked) == (depth == 50)
    for name in OUTPUTS:
        assert_close_to_scale(got[name], expected[name], 1e-5, name)


def test_bottleneck_in_place_sum_is_exact_and_only_at_inference(monkeypatch):
    torch.manual_seed(0)
    block = backbone.Bottleneck(64, 16, 1, None, backbone.FrozenBatchNorm2d).eval()
    with torch.no_grad():
        block.bn3.weight.uniform_(0.5, 1.5)
        block.bn3.bias.normal_()
    x = torch.randn(1, 64, 20, 24)
    with torch.inference_mode():
        monkeypatch.setattr(backbone, "CHUNK_BYTES", 1 << 40)
        expected = block(x.clone())
        monkeypatch.setattr(backbone, "CHUNK_BYTES", 4096)
        given = x.clone()
        got = block(given)
    assert torch.equal(got, expected)  # the same sums, element by element
    assert got.data_ptr() == given.data_ptr()  # written over the block's input
    with torch.enable_grad():  # training keeps its input and the autograd graph
        before = x.clone()
        block(x)
    assert torch.equal(x, before)


def test_encoder_overwrites_only_what_it_is_given(monkeypatch):
    model = model_and_batch(18)[0]
    monkeypatch.setattr(transformer, "ENCODER_CHUNK", 37)
    layer = model.detector.encoder.layers[0]
    x = torch.randn(1, 100, layer.fc1.in_features)
    pos = torch.randn_like(x)
    reference_points = torch.rand(1, 100, 3, 2)
    shapes, token_mask = [(5, 10), (5, 6), (4, 5)], torch.ones(1, 100, dtype=torch.bool)
    kept = x.clone()
    with torch.inference_mode():
        copy = layer(x, pos, token_mask, reference_points, shapes)
        assert torch.equal(x, kept)
        overwritten = layer(x, pos, token_mask, reference_points, shapes, overwrite=True)
    assert overwritten.data_ptr() == x.data_ptr() and torch.equal(copy, overwritten)


@pytest.mark.parametrize("depth", [18, 50])
@pytest.mark.parametrize("shape", [(1, 3, 97, 131), (2, 3, 64, 40), (1, 3, 33, 50)])
@pytest.mark.parametrize("bands", [2, 3, 7])
def test_striped_early_stages_equal_the_whole_stages(depth, shape, bands):
    torch.manual_seed(0)
    resnet = backbone.ResNet(depth).eval()
    with torch.no_grad():
        for module in resnet.modules():
            if isinstance(module, backbone.FrozenBatchNorm2d):
                module.weight.uniform_(0.5, 1.5)
                module.running_mean.normal_(std=0.2)
                module.bias.normal_(std=0.1)
    pixels = torch.randn(*shape, generator=torch.Generator().manual_seed(2))
    with torch.inference_mode():
        x = torch.relu(backbone.conv_norm(pixels, resnet.conv1, resnet.bn1))
        x = resnet.layer2[0](resnet.layer1(torch.nn.functional.max_pool2d(x, 3, 2, 1)))
        got = stripes.striped_early_stages(resnet, pixels, bands)
    assert got.shape == x.shape
    assert_close_to_scale(got, x, 1e-5, "C3 after stage 2's first block")


def test_backbone_stripes_only_at_inference_and_for_large_maps(monkeypatch):
    model, pixels, mask = model_and_batch(50)
    monkeypatch.setattr(stripes, "STRIPE_BYTES", 1 << 40)
    expected = outputs(model, pixels, mask)
    monkeypatch.setattr(stripes, "STRIPE_BYTES", 64 << 10)
    used = []
    original = stripes.striped_early_stages
    monkeypatch.setattr(stripes, "striped_early_stages", lambda *a: used.append(a[2]) or original(*a))
    got = outputs(model, pixels, mask)
    assert used and used[0] > 2
    for name in OUTPUTS:
        assert_close_to_scale(got[name], expected[name], 1e-5, name)
    used.clear()
    model(pixels, mask)  # autograd records: the whole stages
    assert not used
    trainable = backbone.ResNet(18, norm="batch").train()  # batch statistics: a band would change them
    assert stripes.stripe_count(trainable, torch.zeros(1, 3, 800, 800)) == 1


def test_relation_head_in_subject_bands_equals_one_band(monkeypatch):
    model, pixels, mask = model_and_batch(18)
    monkeypatch.setattr(relation_head, "PAIR_BAND_BYTES", 1 << 40)
    expected = outputs(model, pixels, mask)
    monkeypatch.setattr(relation_head, "PAIR_BAND_BYTES", 5000)  # 12 queries: bands of a few subjects
    with torch.inference_mode():
        assert len(model.relation_head.subject_bands(torch.zeros(2, 4, 12, 8), 128)) > 2
    got = outputs(model, pixels, mask)
    for name in ("rel_logits", "connectivity_logits"):
        assert_close_to_scale(got[name], expected[name], 1e-5, name)
