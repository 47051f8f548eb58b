"""ResNet backbone with torchvision/timm parameter names and frozen batch norm.

Parameter names follow torchvision's ResNet (`conv1`, `bn1`, `layer{1..4}.{block}.conv{1,2,3}`, `.bn*`,
`.downsample.{0,1}`), so an ImageNet state dict saved by torchvision or timm loads directly (its `fc.*`
entries are ignored). As in the official EGTR (architecture.md §5.1), every BatchNorm becomes a
FrozenBatchNorm2d except the four `layer{1..4}.0.downsample.1`, which stay ordinary trainable BatchNorm2d;
`freeze_downsample_batchnorm=True` freezes them too. `norm="batch"` makes every norm a trainable
BatchNorm2d, for training from scratch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from egtr.models.eager import eager_float32_inference

# (block type, blocks per stage) per depth
RESNET_LAYOUTS = {
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
}


class FrozenBatchNorm2d(nn.Module):
    """BatchNorm2d with fixed statistics and affine parameters, all stored as buffers.

    y = x * w / sqrt(rv + eps) + (b - rm * w / sqrt(rv + eps)), eps = 1e-5.
    """

    def __init__(self, num_features: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.register_buffer("weight", torch.ones(num_features))
        self.register_buffer("bias", torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        state_dict.pop(prefix + "num_batches_tracked", None)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(self, x: Tensor) -> Tensor:
        scale, shift = affine_form(self)
        return x * scale[None, :, None, None] + shift[None, :, None, None]


NORMS = {"frozen": FrozenBatchNorm2d, "batch": nn.BatchNorm2d}
NORM_TYPES = tuple(NORMS.values())


def affine_form(norm: nn.Module) -> tuple[Tensor, Tensor] | None:
    """(scale, shift) [C] with norm(x) = x * scale + shift per channel, when `norm` is such a fixed map (a
    frozen norm, or a BatchNorm2d in eval mode with running statistics); None for a BatchNorm2d that
    normalizes with batch statistics or any other norm. scale = w / sqrt(rv + eps), shift = b - rm * scale."""
    if not isinstance(norm, NORM_TYPES) or (
        isinstance(norm, nn.BatchNorm2d) and (norm.training or norm.running_mean is None)
    ):
        return None
    scale = norm.weight * (norm.running_var + norm.eps).rsqrt()
    return scale, norm.bias - norm.running_mean * scale


def conv_norm(x: Tensor, conv: nn.Conv2d, norm: nn.Module, padding: tuple[int, int] | None = None) -> Tensor:
    """norm(conv(x)), with `padding` instead of the convolution's own when given. A norm that is a fixed
    affine map per output channel is folded into the convolution (weight * scale, bias shift): one pass
    over the output instead of three, the same numbers up to rounding, and gradients reach the
    convolution weight through the fold."""
    affine = affine_form(norm)
    if affine is None:
        return norm(conv2d(x, conv.weight, conv.bias, conv, padding))
    scale, shift = affine
    if conv.bias is not None:
        shift = shift + conv.bias * scale
    return conv2d(x, conv.weight * scale[:, None, None, None], shift, conv, padding)


def conv2d(
    x: Tensor, weight: Tensor, bias: Tensor | None, conv: nn.Conv2d, padding: tuple[int, int] | None = None
) -> Tensor:
    """F.conv2d with the geometry of `conv` (its padding unless `padding` is given). A bf16 convolution of
    stride > 1 on a CPU map at most 2 pixels wide runs in float32 instead: oneDNN's AMX bf16 kernel (oneDNN
    3.12, torch 2.13) reads past the end of such an input, which gives NaN or silently wrong outputs
    (tests/models/test_backbone.py shows it); such maps are tiny, so the float32 detour costs nothing
    measurable."""
    padding = conv.padding if padding is None else padding
    if conv.stride[-1] > 1 and computes_in_bf16(x) and x.device.type == "cpu" and x.shape[-1] <= 2:
        dtype = torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else x.dtype
        with torch.autocast("cpu", enabled=False):
            bias = None if bias is None else bias.float()
            output = F.conv2d(
                x.float(), weight.float(), bias, conv.stride, padding, conv.dilation, conv.groups
            )
        return output.to(dtype)
    return F.conv2d(x, weight, bias, conv.stride, padding, conv.dilation, conv.groups)


def computes_in_bf16(x: Tensor) -> bool:
    """Whether a CPU convolution of `x` runs in bf16 (a bf16 input, or bf16 autocast)."""
    autocast = torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16
    return x.dtype == torch.bfloat16 or autocast


def shortcut(x: Tensor, downsample: nn.Module | None) -> Tensor:
    """The residual branch of a block: x, or downsample = Sequential(conv, norm) applied to x."""
    return x if downsample is None else conv_norm(x, downsample[0], downsample[1])


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(
        self, in_channels: int, width: int, stride: int, downsample: nn.Module | None, norm: type
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, width, 3, stride, 1, bias=False)
        self.bn1 = norm(width)
        self.conv2 = nn.Conv2d(width, width, 3, 1, 1, bias=False)
        self.bn2 = norm(width)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(conv_norm(x, self.conv1, self.bn1), inplace=True)
        return self.close(conv_norm(out, self.conv2, self.bn2), shortcut(x, self.downsample))

    def close(self, out: Tensor, residual: Tensor) -> Tensor:
        """ReLU(out + residual), out: the second convolution's normalized output (overwritten)."""
        return F.relu(out.add_(residual), inplace=True)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(
        self, in_channels: int, width: int, stride: int, downsample: nn.Module | None, norm: type
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, width, 1, bias=False)
        self.bn1 = norm(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride, 1, bias=False)
        self.bn2 = norm(width)
        self.conv3 = nn.Conv2d(width, width * 4, 1, bias=False)
        self.bn3 = norm(width * 4)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(conv_norm(x, self.conv1, self.bn1), inplace=True)
        out = F.relu(conv_norm(out, self.conv2, self.bn2), inplace=True)
        return self.close(out, shortcut(x, self.downsample))

    def close(self, out: Tensor, residual: Tensor) -> Tensor:
        """ReLU(norm(conv3(out)) + residual), out: the second convolution's activated output; at inference
        the sum is written over `residual` in chunks (`accumulates_in_place`)."""
        if accumulates_in_place(out, self.bn3, self.conv3.out_channels):
            return F.relu(add_conv_norm(residual, out, self.conv3, self.bn3), inplace=True)
        return F.relu(conv_norm(out, self.conv3, self.bn3).add_(residual), inplace=True)


# a bottleneck's last convolution with a larger output goes in chunks, each at most this large: at 800x1333
# the Visual Genome preset's stages 1-3 (68, 34 and 17 MB outputs) then add to their shortcut in place, so
# that no block allocates a map of its own size beside its input (which fragmented the heap: about 30 MB of
# growth per stage-2 block, BENCHMARKS.md "Memory of egtr predict")
CHUNK_BYTES = 16 << 20


def accumulates_in_place(x: Tensor, norm: nn.Module, channels: int) -> bool:
    """Whether a bottleneck adds its last convolution (of `x`, to `channels` channels) to the shortcut in
    place, in chunks of output channels (`add_conv_norm`): at inference (no autograd, not traced; the
    block's input, when it is the shortcut, is overwritten), with a foldable norm, in float32, when that
    output is larger than CHUNK_BYTES."""
    big = x.shape[0] * channels * x.shape[2] * x.shape[3] * x.element_size() > CHUNK_BYTES
    return eager_float32_inference(x) and big and affine_form(norm) is not None


def add_conv_norm(total: Tensor, x: Tensor, conv: nn.Conv2d, norm: nn.Module) -> Tensor:
    """total += norm(conv(x)), in place, in halves of the output channels until each call's output is at most
    CHUNK_BYTES: what `conv_norm(x, conv, norm).add_(total)` gives (the same sums, element by element: a
    1x1 convolution's output channel does not depend on the others) without holding the convolution's whole
    output beside `total` (68 MB at 800x1333 in a ResNet-50's first stage, 34 MB in its second)."""
    scale, shift = affine_form(norm)
    if conv.bias is not None:
        shift = shift + conv.bias * scale
    weight = conv.weight * scale[:, None, None, None]
    step = conv.out_channels
    while step > 16 and total[:, :step].numel() * total.element_size() > CHUNK_BYTES:
        step //= 2
    for start in range(0, conv.out_channels, step):
        part = slice(start, start + step)
        total[:, part] += conv2d(x, weight[part], shift[part], conv)
    return total


class ResNet(nn.Module):
    """ResNet-{18,34,50,101} trunk returning the C3, C4, C5 feature maps (strides 8, 16, 32).

    Args:
        depth: 18, 34, 50 or 101.
        norm: "frozen" (official: FrozenBatchNorm2d) or "batch" (trainable BatchNorm2d everywhere).
        freeze_downsample_batchnorm: with norm="frozen", also freeze the downsample BatchNorms (official:
            trainable).
        frozen_stages: residual stages 1..n (with the stem) get requires_grad=False (official 1; 0 = none).
        width: channels of the stem and of the first stage (64 as in every standard ResNet; stage k has
            width * 2^(k-1) per block, times 4 out of a bottleneck). A narrower trunk is for small worlds
            trained from scratch (the demo); ImageNet weights need 64.
    """

    def __init__(
        self,
        depth: int = 50,
        norm: str = "frozen",
        freeze_downsample_batchnorm: bool = False,
        frozen_stages: int = 1,
        width: int = 64,
    ) -> None:
        super().__init__()
        if depth not in RESNET_LAYOUTS:
            raise ValueError(f"ResNet depth must be one of {sorted(RESNET_LAYOUTS)}, got {depth}")
        if norm not in NORMS:
            raise ValueError(f"backbone norm must be one of {sorted(NORMS)}, got {norm!r}")
        kind, blocks = RESNET_LAYOUTS[depth]
        block = BasicBlock if kind == "basic" else Bottleneck
        block_norm = NORMS[norm]
        downsample_norm = (
            FrozenBatchNorm2d if norm == "frozen" and freeze_downsample_batchnorm else nn.BatchNorm2d
        )
        widths = [width * 2**stage for stage in range(4)]
        self.conv1 = nn.Conv2d(3, width, 7, 2, 3, bias=False)
        self.bn1 = block_norm(width)
        in_channels = width
        for stage, (count, width) in enumerate(zip(blocks, widths), start=1):
            stride = 1 if stage == 1 else 2
            out_channels = width * block.expansion
            downsample = None
            if stride != 1 or in_channels != out_channels:
                downsample = nn.Sequential(
                    nn.Conv2d(in_channels, out_channels, 1, stride, bias=False), downsample_norm(out_channels)
                )
            layers = [block(in_channels, width, stride, downsample, block_norm)]
            layers += [block(out_channels, width, 1, None, block_norm) for _ in range(count - 1)]
            setattr(self, f"layer{stage}", nn.Sequential(*layers))
            in_channels = out_channels
        self.out_channels = [width * block.expansion for width in widths[1:]]
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        for name, parameter in self.named_parameters():
            stage = int(name[5]) if name.startswith("layer") else 1  # the stem goes with layer1
            if stage <= frozen_stages:
                parameter.requires_grad_(False)

    def forward(self, pixel_values: Tensor) -> list[Tensor]:
        """pixel_values [B,3,H,W] -> [C3 [B,c3,H/8,W/8], C4 [B,c4,H/16,W/16], C5 [B,c5,H/32,W/32]].

        At inference on large inputs the stem, stage 1 and stage 2's first block run in horizontal bands
        (models/stripes.py: the same numbers, without the whole stride-2 and stride-4 maps)."""
        from egtr.models.stripes import stripe_count, striped_early_stages  # stripes builds on this module

        bands = stripe_count(self, pixel_values) if eager_float32_inference(pixel_values) else 1
        if bands > 1:
            c3 = self.layer2[1:](striped_early_stages(self, pixel_values, bands))
        else:
            x = F.relu(conv_norm(pixel_values, self.conv1, self.bn1), inplace=True)
            x = F.max_pool2d(x, kernel_size=3, stride=2, padding=1)
            x = self.layer1(x)  # C2 is freed once layer2 has read it (68 MB at 800x1333 for ResNet-50)
            c3 = self.layer2(x)
            del x
        c4 = self.layer3(c3)
        c5 = self.layer4(c4)
        return [c3, c4, c5]


def load_backbone_weights(resnet: ResNet, state_dict: dict[str, Tensor], source: str) -> None:
    """Load an ImageNet ResNet state dict (torchvision/timm names) into `resnet`, strictly.

    Classifier (`fc.*`) entries and `num_batches_tracked` counters of frozen norms are ignored; anything else
    missing, unexpected or mis-shaped raises ValueError naming the keys and `source`.
    """
    state = {key.removeprefix("module."): value for key, value in state_dict.items()}
    state = {key: value for key, value in state.items() if not key.startswith("fc.")}
    expected = resnet.state_dict()
    state = {
        key: value
        for key, value in state.items()
        if not (key.endswith("num_batches_tracked") and key not in expected)
    }
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    mismatched = sorted(key for key in set(state) & set(expected) if state[key].shape != expected[key].shape)
    if missing or unexpected or mismatched:
        details = []
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("mis-shaped", mismatched)):
            if keys:
                details.append(f"{label}: {', '.join(keys[:8])}{' …' if len(keys) > 8 else ''} ({len(keys)})")
        raise ValueError(f"{source}: not a ResNet state dict for this depth; " + "; ".join(details))
    resnet.load_state_dict(state, strict=True)
