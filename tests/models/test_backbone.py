"""ResNet with torchvision parameter names; ImageNet weights load strictly."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from egtr.models.backbone import FrozenBatchNorm2d, ResNet, conv2d, load_backbone_weights
from tests.numerics import assert_close_to_scale


def torchvision_like_state_dict(resnet: ResNet) -> dict:
    """What torchvision's resnet.state_dict() holds: every BN with num_batches_tracked, plus fc."""
    state = {}
    for key, value in resnet.state_dict().items():
        state[key] = torch.randn_like(value.float()).to(value.dtype) if value.is_floating_point() else value
    for name, module in resnet.named_modules():
        if isinstance(module, FrozenBatchNorm2d):
            state[f"{name}.num_batches_tracked"] = torch.tensor(0)
            state[f"{name}.running_var"] = state[f"{name}.running_var"].abs() + 0.1
    state["fc.weight"], state["fc.bias"] = torch.randn(1000, 2048), torch.randn(1000)
    return state


def test_torchvision_names_and_shapes():
    resnet = ResNet(50)
    state = resnet.state_dict()
    assert state["conv1.weight"].shape == (64, 3, 7, 7)
    assert state["layer1.0.downsample.0.weight"].shape == (256, 64, 1, 1)
    assert state["layer4.2.conv3.weight"].shape == (2048, 512, 1, 1)
    assert "layer1.0.downsample.1.num_batches_tracked" in state  # trainable BN as officially
    assert "layer1.0.bn1.num_batches_tracked" not in state
    blocks = {key.split(".")[0] + "." + key.split(".")[1] for key in state if key.startswith("layer")}
    assert len(blocks) == 3 + 4 + 6 + 3
    assert resnet.out_channels == [512, 1024, 2048]
    assert ResNet(18).out_channels == [128, 256, 512]


def test_trainable_batchnorm_option_for_training_from_scratch():
    resnet = ResNet(18, norm="batch", frozen_stages=0)
    assert not any(isinstance(m, FrozenBatchNorm2d) for m in resnet.modules())
    assert all(p.requires_grad for p in resnet.parameters())
    with pytest.raises(ValueError, match="norm"):
        ResNet(18, norm="group")


def test_a_narrower_trunk_keeps_names_and_scales_every_stage():
    standard, narrow = ResNet(18).state_dict(), ResNet(18, width=16).state_dict()
    assert standard.keys() == narrow.keys()
    assert narrow["conv1.weight"].shape == (16, 3, 7, 7)
    assert narrow["layer4.1.conv2.weight"].shape == (128, 128, 3, 3)
    assert ResNet(18, width=16).out_channels == [32, 64, 128]
    assert ResNet(50, width=16).out_channels == [128, 256, 512]
    features = ResNet(18, norm="batch", width=16)(torch.randn(1, 3, 64, 64))
    assert [tuple(f.shape) for f in features] == [(1, 32, 8, 8), (1, 64, 4, 4), (1, 128, 2, 2)]


def test_feature_strides():
    c3, c4, c5 = ResNet(18)(torch.randn(1, 3, 64, 96))
    assert c3.shape[-2:] == (8, 12) and c4.shape[-2:] == (4, 6) and c5.shape[-2:] == (2, 3)


def test_imagenet_weights_load_and_are_used():
    resnet = ResNet(50)
    state = torchvision_like_state_dict(resnet)
    load_backbone_weights(resnet, state, "resnet50.pth")
    torch.testing.assert_close(resnet.layer2[0].conv1.weight, state["layer2.0.conv1.weight"])
    torch.testing.assert_close(resnet.bn1.running_var, state["bn1.running_var"])


def test_wrong_weights_are_rejected_with_names():
    resnet = ResNet(50)
    state = torchvision_like_state_dict(ResNet(50))
    del state["layer3.1.conv2.weight"]
    with pytest.raises(ValueError, match=r"weights.pth.*missing: layer3.1.conv2.weight"):
        load_backbone_weights(resnet, state, "weights.pth")
    state = torchvision_like_state_dict(ResNet(50)) | {"conv1.weight": torch.randn(64, 3, 3, 3)}
    with pytest.raises(ValueError, match="mis-shaped: conv1.weight"):
        load_backbone_weights(resnet, state, "r50.pth")
    with pytest.raises(ValueError, match="missing: layer3.10"):
        load_backbone_weights(ResNet(101), torchvision_like_state_dict(ResNet(50)), "r50.pth")


def test_frozen_batchnorm_formula():
    norm = FrozenBatchNorm2d(2)
    norm.weight.copy_(torch.tensor([2.0, 1.0]))
    norm.bias.copy_(torch.tensor([0.5, -1.0]))
    norm.running_mean.copy_(torch.tensor([1.0, 0.0]))
    norm.running_var.copy_(torch.tensor([4.0, 1.0]))
    x = torch.ones(1, 2, 1, 1) * 3
    expected = torch.tensor([2 * (3 - 1) / (4 + 1e-5) ** 0.5 + 0.5, 3 / (1 + 1e-5) ** 0.5 - 1]).view(
        1, 2, 1, 1
    )
    torch.testing.assert_close(norm(x), expected)


def randomize_norms(resnet: ResNet, seed: int = 0) -> None:
    """Norm statistics and affine parameters of a trained-looking network (scale about 1)."""
    generator = torch.Generator().manual_seed(seed)
    for module in resnet.modules():
        if isinstance(module, (FrozenBatchNorm2d, torch.nn.BatchNorm2d)):
            shape = module.weight.shape
            with torch.no_grad():
                module.weight.copy_(1 + 0.2 * torch.randn(shape, generator=generator))
                module.bias.copy_(0.2 * torch.randn(shape, generator=generator))
                module.running_mean.copy_(0.2 * torch.randn(shape, generator=generator))
                module.running_var.copy_(torch.rand(shape, generator=generator) + 0.5)


def unfused_forward(resnet: ResNet, x: torch.Tensor) -> list[torch.Tensor]:
    """egtr 0.1's ResNet forward: every norm a separate module call after its convolution."""

    def block(b, x):
        identity = x if b.downsample is None else b.downsample(x)
        out = torch.relu(b.bn1(b.conv1(x)))
        if hasattr(b, "conv3"):
            out = torch.relu(b.bn2(b.conv2(out)))
            return torch.relu(b.bn3(b.conv3(out)) + identity)
        return torch.relu(b.bn2(b.conv2(out)) + identity)

    x = torch.nn.functional.max_pool2d(torch.relu(resnet.bn1(resnet.conv1(x))), 3, 2, 1)
    features = []
    for stage in (resnet.layer1, resnet.layer2, resnet.layer3, resnet.layer4):
        for b in stage:
            x = block(b, x)
        features.append(x)
    return features[1:]


@pytest.mark.parametrize(
    "depth, norm, freeze_downsample_batchnorm, training",
    [
        (50, "frozen", False, False),
        (18, "frozen", True, True),
        (18, "batch", False, True),
        (18, "batch", False, False),
    ],
)
def test_folded_norms_equal_the_unfused_forward_with_gradients(
    depth, norm, freeze_downsample_batchnorm, training
):
    """Frozen norms (and batch norms in eval mode) folded into their convolutions give the same features and
    the same gradients for every trainable parameter as the norm applied after the convolution."""
    torch.manual_seed(0)
    resnet = ResNet(depth, norm, freeze_downsample_batchnorm, frozen_stages=1)
    randomize_norms(resnet)
    reference = ResNet(depth, norm, freeze_downsample_batchnorm, frozen_stages=1)
    reference.load_state_dict(resnet.state_dict())
    resnet.train(training)
    reference.train(training)
    x = torch.randn(2, 3, 48, 48)
    got, expected = resnet(x), unfused_forward(reference, x)
    for index, (mine, theirs) in enumerate(zip(got, expected)):
        assert_close_to_scale(mine, theirs, msg=f"C{index + 3}")
    sum(f.square().mean() for f in got).backward()
    sum(f.square().mean() for f in expected).backward()
    trained = [(n, p) for n, p in resnet.named_parameters() if p.requires_grad]
    assert trained
    for name, parameter in trained:
        assert_close_to_scale(parameter.grad, reference.get_parameter(name).grad, msg=name)
    if training and norm == "batch":  # batch statistics were used and the running ones updated alike
        for name, buffer in resnet.named_buffers():
            torch.testing.assert_close(buffer, reference.get_buffer(name), msg=name)


def nan_followed(shape: tuple[int, ...]) -> torch.Tensor:
    """A bf16 tensor of `shape` whose memory is followed by NaN (what a kernel reading past it sees)."""
    count = math.prod(shape)
    buffer = torch.full((count + (1 << 15),), float("nan"), dtype=torch.bfloat16)
    buffer[:count] = torch.randn(count, generator=torch.Generator().manual_seed(0)).bfloat16()
    return buffer[:count].view(shape)


@pytest.mark.parametrize("width", [1, 2])
def test_bf16_stride_two_convolutions_of_maps_two_pixels_wide_are_exact(width):
    """oneDNN's AMX bf16 kernel reads past a stride-2 input at most 2 pixels wide (NaN or garbage in the
    output, on AMX CPUs); `conv2d` convolves such maps in float32, with the bf16 output autocast expects."""
    conv = nn.Conv2d(256, 512, 3, 2, 1, bias=False)
    x = nan_followed((1, 256, 7, width))
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        output = conv2d(x, conv.weight, None, conv)
    expected = F.conv2d(x.float(), conv.weight, None, 2, 1)
    assert output.dtype == torch.bfloat16 and torch.isfinite(output).all()
    torch.testing.assert_close(output.float(), expected, rtol=1e-2, atol=1e-2)


def test_other_convolutions_keep_their_path():
    """Wider maps stay in bf16 under autocast; float32 convolutions are plain F.conv2d, narrow or not."""
    conv = nn.Conv2d(8, 16, 3, 2, 1)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        assert conv2d(torch.randn(1, 8, 6, 6), conv.weight, conv.bias, conv).dtype == torch.bfloat16
    narrow = torch.randn(1, 8, 6, 2)
    with torch.no_grad():
        assert torch.equal(conv2d(narrow, conv.weight, conv.bias, conv), conv(narrow))
