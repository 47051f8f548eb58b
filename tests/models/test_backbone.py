"""ResNet with torchvision parameter names; ImageNet weights load strictly."""

import pytest
import torch

from egtr.models.backbone import FrozenBatchNorm2d, ResNet, load_backbone_weights


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
