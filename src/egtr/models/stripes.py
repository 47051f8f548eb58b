"""The backbone's first stages in horizontal stripes, at inference: the stem, the max pool, stage 1 and the
first block of stage 2 computed for a band of output rows at a time, each band from the input rows it
depends on (its receptive field: the band and a halo), so that the stride-2 and stride-4 maps (the stem's
output and C2, 68 MB each at 800x1333 for a ResNet-50) never exist whole, only a stripe of each.

Exact: a row of a convolution's (or max pool's) output depends only on the `kernel` input rows under its
window. Inside the map a band reads those rows from the band below it in the chain (the halo is computed
twice, by two neighbouring bands); at the map's top and bottom edges the rows outside the map are the
operation's padding, given here as explicit zero rows, and the operation then runs without row padding
(its column padding is unchanged). Zero rows are also the max pool's padding, as its input is a ReLU's
output (>= 0) and every pooling window holds at least one real row.

Geometry of one operation with kernel k, stride s and padding p along the rows: output rows [lo, hi) read
input rows [lo * s - p, (hi - 1) * s - p + k); an input of h rows gives (h + 2p - k) // s + 1 output rows.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

import torch.nn.functional as F
from torch import Tensor, nn

from egtr.models.backbone import NORM_TYPES, affine_form, conv_norm, shortcut

# the largest stride-4 map (stage 1's output) of one band: 9 bands at 800x1333; 8 MB instead of 16 took
# about 10 MB off the median peak of `egtr predict` there at the same speed (4 MB: no less memory, slower)
STRIPE_BYTES = 8 << 20


@dataclass
class Band:
    """Rows [top, top + values.shape[2]) of a map of `height` rows; values [B, C, rows, W]."""

    values: Tensor
    top: int
    height: int

    def rows(self, lo: int, hi: int) -> Tensor:
        """Rows [lo, hi) of the map [B, C, hi - lo, W]: zero rows where the range leaves the map (the
        padding), the band's own rows elsewhere (they must be in it)."""
        first, last = max(lo, 0), min(hi, self.height)
        if first < self.top or last > self.top + self.values.shape[2]:
            raise ValueError(
                f"rows {first}..{last} are not in the band {self.top}..{self.top + self.values.shape[2]}"
            )
        inside = self.values[:, :, first - self.top : last - self.top]
        if first == lo and last == hi:
            return inside
        return F.pad(inside, (0, 0, first - lo, hi - last))


def output_height(height: int, kernel: int, stride: int, padding: int) -> int:
    return (height + 2 * padding - kernel) // stride + 1


def input_span(lo: int, hi: int, kernel: int, stride: int, padding: int) -> tuple[int, int]:
    """The input rows [lo', hi') that output rows [lo, hi) read (may leave the map: the padding)."""
    return lo * stride - padding, (hi - 1) * stride - padding + kernel


def conv_rows(band: Band, conv: nn.Conv2d, norm: nn.Module, lo: int, hi: int, relu: bool) -> Band:
    """Rows [lo, hi) of norm(conv(map)) (then ReLU) from a band of the map."""
    (kernel, _), (stride, _), (padding, column_padding) = conv.kernel_size, conv.stride, conv.padding
    x = band.rows(*input_span(lo, hi, kernel, stride, padding))
    y = conv_norm(x, conv, norm, padding=(0, column_padding))
    if relu:
        y = F.relu(y, inplace=True)
    return Band(y, lo, output_height(band.height, kernel, stride, padding))


class Stripe(Protocol):
    """One operation of the striped chain."""

    def height(self, height: int) -> int:
        """Output rows of an input of `height` rows."""

    def reads(self, lo: int, hi: int, height: int) -> tuple[int, int]:
        """The rows of its input (of `height` rows, clipped to the map) that output rows [lo, hi) need."""

    def run(self, band: Band, lo: int, hi: int) -> Band:
        """Output rows [lo, hi) from a band of its input that holds `reads(lo, hi, ...)`."""


def clipped(span: tuple[int, int], height: int) -> tuple[int, int]:
    return max(span[0], 0), min(span[1], height)


class StemStripe:
    """The stem: ReLU(norm(conv 7x7, stride 2))."""

    def __init__(self, conv: nn.Conv2d, norm: nn.Module) -> None:
        self.conv, self.norm = conv, norm

    def height(self, height: int) -> int:
        return output_height(height, self.conv.kernel_size[0], self.conv.stride[0], self.conv.padding[0])

    def reads(self, lo: int, hi: int, height: int) -> tuple[int, int]:
        span = input_span(lo, hi, self.conv.kernel_size[0], self.conv.stride[0], self.conv.padding[0])
        return clipped(span, height)

    def run(self, band: Band, lo: int, hi: int) -> Band:
        return conv_rows(band, self.conv, self.norm, lo, hi, relu=True)


class MaxPoolStripe:
    """The 3x3 max pool of stride 2 and padding 1 after the stem."""

    def height(self, height: int) -> int:
        return output_height(height, 3, 2, 1)

    def reads(self, lo: int, hi: int, height: int) -> tuple[int, int]:
        return clipped(input_span(lo, hi, 3, 2, 1), height)

    def run(self, band: Band, lo: int, hi: int) -> Band:
        x = band.rows(*input_span(lo, hi, 3, 2, 1))
        return Band(F.max_pool2d(x, 3, 2, padding=(0, 1)), lo, self.height(band.height))


class BlockStripe:
    """A residual block (backbone.Bottleneck or backbone.BasicBlock): ReLU(convolutions(x) + shortcut(x))."""

    def __init__(self, block: nn.Module) -> None:
        self.block = block
        self.bottleneck = hasattr(block, "conv3")
        self.stride = block.conv2.stride[0] if self.bottleneck else block.conv1.stride[0]

    def height(self, height: int) -> int:
        return output_height(height, 3, self.stride, 1)

    def middle(self, lo: int, hi: int, height: int) -> tuple[int, int]:
        """Rows of the first convolution's output that output rows [lo, hi) read (through the second)."""
        if self.bottleneck:  # conv1 1x1 keeps the rows; conv2 3x3 of stride s reads them
            return clipped(input_span(lo, hi, 3, self.stride, 1), height)
        return clipped(input_span(lo, hi, 3, 1, 1), self.height(height))  # conv2 3x3 of stride 1

    def reads(self, lo: int, hi: int, height: int) -> tuple[int, int]:
        middle = self.middle(lo, hi, height)
        if self.bottleneck:
            return middle
        return clipped(input_span(*middle, 3, self.stride, 1), height)  # conv1 3x3 of stride s

    def run(self, band: Band, lo: int, hi: int) -> Band:
        block = self.block
        middle = self.middle(lo, hi, band.height)
        if self.bottleneck:
            x = band.rows(*middle)
            y = Band(F.relu(conv_norm(x, block.conv1, block.bn1), inplace=True), middle[0], band.height)
            y = conv_rows(y, block.conv2, block.bn2, lo, hi, relu=True).values  # conv3 is in close
        else:
            y = conv_rows(band, block.conv1, block.bn1, *middle, relu=True)
            y = conv_rows(y, block.conv2, block.bn2, lo, hi, relu=False).values
        # a 1x1 shortcut of stride s: output row r reads input row r * s
        residual = shortcut(band.rows(lo * self.stride, (hi - 1) * self.stride + 1), block.downsample)
        return Band(block.close(y, residual), lo, self.height(band.height))


def early_stages(resnet: nn.Module) -> list[Stripe]:
    """The striped chain of a backbone.ResNet: stem, max pool, every block of stage 1, stage 2's first."""
    blocks = [BlockStripe(block) for block in resnet.layer1] + [BlockStripe(resnet.layer2[0])]
    return [StemStripe(resnet.conv1, resnet.bn1), MaxPoolStripe(), *blocks]


def stripe_count(resnet: nn.Module, pixel_values: Tensor) -> int:
    """How many bands keep each band's stage-1 output (C2) under STRIPE_BYTES; 1 (compute the stages
    whole) when one band would do, or when a norm of the chain is not a fixed affine map (a BatchNorm
    normalizing with the statistics of its input, which a band would change)."""
    blocks = [*resnet.layer1, resnet.layer2[0]]
    norms = [resnet.bn1] + [m for block in blocks for m in block.modules() if isinstance(m, NORM_TYPES)]
    if any(affine_form(norm) is None for norm in norms):
        return 1
    batch, _, height, width = pixel_values.shape
    channels = resnet.layer2[0].conv1.in_channels  # stage 1's output
    stride4 = math.ceil(height / 4) * math.ceil(width / 4)
    return math.ceil(batch * channels * stride4 * pixel_values.element_size() / STRIPE_BYTES)


def striped_early_stages(resnet: nn.Module, pixel_values: Tensor, bands: int) -> Tensor:
    """The output of stage 2's first block [B, C, H/8, W/8] for pixel_values [B, 3, H, W], in `bands`
    bands of its rows: what the stem, the max pool, stage 1 and that block compute on the whole map."""
    chain = early_stages(resnet)
    heights = [pixel_values.shape[2]]
    for stripe in chain:
        heights.append(stripe.height(heights[-1]))
    output = None
    rows = math.ceil(heights[-1] / bands)
    for lo in range(0, heights[-1], rows):
        hi = min(lo + rows, heights[-1])
        spans = [(lo, hi)]
        for stripe, height in zip(reversed(chain), reversed(heights[:-1])):
            spans.append(stripe.reads(*spans[-1], height))
        spans.reverse()  # spans[k]: the rows of the k-th map (0: the pixels) this band needs
        band = Band(pixel_values[:, :, spans[0][0] : spans[0][1]], spans[0][0], heights[0])
        for stripe, span in zip(chain, spans[1:]):
            band = stripe.run(band, *span)
        if output is None:
            shape = (*band.values.shape[:2], heights[-1], band.values.shape[3])
            output = band.values.new_empty(shape)
        output[:, :, lo:hi] = band.values
        del band
    return output
