"""Audit of the bf16 kernels egtr's torch path runs on this CPU: tiny and odd shapes, NaN-poisoned memory.

    python benchmarks/audit_bf16_kernels.py            # every operator the model runs in bf16
    python benchmarks/audit_bf16_kernels.py --json

A kernel that reads past the end of its input (oneDNN 3.12's AMX bf16 convolution does so for stride-2
inputs at most 2 pixels wide, see models/backbone.py:conv2d) returns garbage that depends on what the
memory after the input holds, and can look right by chance. So every input (and weight) here sits at the
start of a buffer whose remainder is NaN: a read past the end shows up as NaN or a large error. Each case
is compared with float32 arithmetic on the same bf16-rounded values; the script runs itself with
`MALLOC_PERTURB_=255`, so that freed heap memory (what a read past a tensor inside the model finds)
holds NaN too; a case fails when its output has a
NaN the reference has not, or differs by more than 2% of the reference's largest magnitude (bf16 output
rounding is 0.4%).

Cases: the convolution geometries of the ResNet-18/50 backbones and of the input projections, with
their real channel counts (oneDNN picks its AMX kernels by size; kernel 1/3/7, stride 1/2, with and without
bias) on maps of 1 to 5 (and 7) pixels per side, batch 1 and 2, channels-first and channels-last
(TorchBackend runs bf16 channels-last); max pooling of the stem; the linear layers of the model (widths
256/1024/512 to 1-1024 outputs) on 1 to 200 rows, 2-D and 3-D; bmm / baddbmm of the relation head;
scaled-dot-product attention of the decoder with 1 to 12 queries. Prints the CPU (flags)
and every failing case, or that none failed.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import sys

import torch
import torch.nn.functional as F
from torch import nn

from egtr.hardware import describe, native_bf16
from egtr.models.backbone import conv2d

SHARE = 0.02  # largest allowed error as a share of the reference's largest magnitude
PERTURB = 255  # glibc fills freed heap memory with this byte: 0xFF.. is NaN in bf16 and float32
WORKED_AROUND: list[str] = []  # raw-kernel failures that models/backbone.py:conv2d avoids


def poisoned(shape: tuple[int, ...], generator: torch.Generator, channels_last: bool = False) -> torch.Tensor:
    """A bf16 tensor of `shape` (random values) at the start of a buffer whose remainder is NaN."""
    count = math.prod(shape)
    buffer = torch.full((count + (1 << 14),), float("nan"), dtype=torch.bfloat16)
    buffer[:count] = torch.randn(count, generator=generator).bfloat16()
    if channels_last and len(shape) == 4:
        n, c, h, w = shape
        return buffer[:count].view(n, h, w, c).permute(0, 3, 1, 2)  # channels-last strides, same buffer
    return buffer[:count].view(shape)


def judge(name: str, got: torch.Tensor, expected: torch.Tensor) -> dict | None:
    """A failure record, or None when `got` (bf16 kernel) matches `expected` (fp32 of the same values)."""
    got, expected = got.float(), expected.float()
    new_nan = bool((torch.isnan(got) & ~torch.isnan(expected)).any())
    scale = float(expected.abs().max()) if expected.numel() else 0.0
    error = float((got - expected).abs().max()) if got.numel() else 0.0
    if new_nan or not error <= SHARE * max(scale, 1e-3):
        return {"case": name, "nan": new_nan, "max_abs_error": error, "reference_scale": scale}
    return None


def convolution_cases(generator: torch.Generator):
    geometries = {  # (in, out, kernel, stride, padding, bias): the convolutions of ResNet-18/50 + projections
        "stem 7x7/2": (3, 64, 7, 2, 3, False),
        "3x3/1 64": (64, 64, 3, 1, 1, False),
        "3x3/2 64-128 (ResNet-18)": (64, 128, 3, 2, 1, False),
        "3x3/2 128": (128, 128, 3, 2, 1, False),
        "3x3/1 256": (256, 256, 3, 1, 1, False),
        "3x3/2 256": (256, 256, 3, 2, 1, False),
        "3x3/2 256-512 (ResNet-18)": (256, 512, 3, 2, 1, False),
        "3x3/2 512": (512, 512, 3, 2, 1, False),
        "1x1/1 64-256": (64, 256, 1, 1, 0, False),
        "1x1/1 1024-256": (1024, 256, 1, 1, 0, False),
        "1x1/2 downsample 256-512": (256, 512, 1, 2, 0, False),
        "1x1/2 downsample 1024-2048": (1024, 2048, 1, 2, 0, False),
        "1x1 input projection 2048-256": (2048, 256, 1, 1, 0, True),
        "3x3/2 input projection 2048-256": (2048, 256, 3, 2, 1, True),
        "3x3/2 input projection 512-256 (ResNet-18)": (512, 256, 3, 2, 1, True),
    }
    for (label, (cin, cout, k, s, p, bias)), side_h, side_w, batch, last in itertools.product(
        geometries.items(), (1, 2, 3, 4, 5, 7), (1, 2, 3, 4, 5, 7), (1, 2), (False, True)
    ):
        x = poisoned((batch, cin, side_h, side_w), generator, last)
        weight = poisoned((cout, cin, k, k), generator)
        b = poisoned((cout,), generator) if bias else None
        name = f"conv {label} {batch}x{cin}x{side_h}x{side_w} {'channels-last' if last else 'contiguous'}"
        expected = F.conv2d(x.float(), weight.float(), None if b is None else b.float(), s, p)
        geometry = nn.Conv2d(cin, cout, k, s, p, bias=bias)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            raw = F.conv2d(x, weight, b, s, p)
            routed = conv2d(x, weight, b, geometry)  # what the model runs
        yield name, routed, expected
        if judge(name, raw, expected):  # the kernel's own failure, which conv2d routes around
            WORKED_AROUND.append(name)


def pooling_cases(generator: torch.Generator):
    for side_h, side_w, last in itertools.product((1, 2, 3, 4, 5), (1, 2, 3, 4, 5), (False, True)):
        x = poisoned((1, 16, side_h, side_w), generator, last)
        yield (
            f"max_pool2d 3/2 1x16x{side_h}x{side_w} {'channels-last' if last else 'contiguous'}",
            F.max_pool2d(x, 3, 2, 1),
            F.max_pool2d(x.float(), 3, 2, 1),
        )


def linear_cases(generator: torch.Generator):
    shapes = (
        (256, 1024),
        (1024, 256),
        (256, 256),
        (256, 128),
        (256, 150),
        (256, 51),
        (256, 4),
        (256, 1),
        (512, 1),
    )
    for rows, (width, out), three_d in itertools.product((1, 2, 3, 17, 200), shapes, (0, 1)):
        x = poisoned((1, rows, width) if three_d else (rows, width), generator)
        weight, bias = poisoned((out, width), generator), poisoned((out,), generator)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            got = F.linear(x, weight, bias)
        yield (
            f"linear {list(x.shape)} -> {out}",
            got,
            F.linear(x.float(), weight.float(), bias.float()),
        )


def batched_cases(generator: torch.Generator):
    for batch, queries, sources, width in itertools.product((1, 3), (1, 2, 5, 12), (1, 7), (1, 16, 33)):
        gates = poisoned((batch, queries, sources), generator)
        projected = poisoned((batch, sources, width), generator)
        bias = poisoned((width,), generator)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            got_bmm = torch.bmm(gates, projected)
            got_baddbmm = torch.baddbmm(bias, gates, projected)
        expected = torch.bmm(gates.float(), projected.float())
        yield f"bmm {list(gates.shape)} @ {list(projected.shape)}", got_bmm, expected
        yield f"baddbmm {list(gates.shape)} @ {list(projected.shape)}", got_baddbmm, expected + bias.float()


def attention_cases(generator: torch.Generator):
    for batch, heads, queries, head_dim in itertools.product((1, 2), (1, 8), (1, 2, 3, 5, 12), (4, 32)):
        q, k, v = (poisoned((batch, heads, queries, head_dim), generator) for _ in range(3))
        with torch.autocast("cpu", dtype=torch.bfloat16):
            got = F.scaled_dot_product_attention(q, k, v)
        yield (
            f"scaled_dot_product_attention {batch}x{heads}x{queries}x{head_dim}",
            got,
            F.scaled_dot_product_attention(q.float(), k.float(), v.float()),
        )


CASES = (convolution_cases, pooling_cases, linear_cases, batched_cases, attention_cases)


def audit() -> tuple[int, list[dict]]:
    generator = torch.Generator().manual_seed(0)
    count, failures = 0, []
    with torch.inference_mode():
        for cases in CASES:
            for name, got, expected in cases(generator):
                count += 1
                failure = judge(name, got, expected)
                if failure:
                    failures.append(failure)
    return count, failures


MODEL_SIZES = [(1, 1), (1, 37), (37, 1), (2, 3), (5, 5), (17, 64), (64, 17), (31, 47), (64, 64), (100, 13)]


def model_audit(preset: str, openvino: bool) -> tuple[int, list[dict]]:
    """The whole model in bf16 (TorchBackend, and the OpenVINO export with its bf16 hint) on images of odd
    and tiny sizes, batched alone and padded in pairs, against fp32: NaN, or class logits / boxes further
    than the share of their scale the audit allows (bf16 through the whole network: 10%)."""
    import tempfile

    from egtr.config import EGTRConfig
    from egtr.inference.backend import TorchBackend
    from egtr.models.egtr import EGTR

    torch.manual_seed(0)
    model = EGTR(EGTRConfig.preset(preset)).eval()
    backends = {"torch bf16": TorchBackend(model, "cpu", "bf16")}
    directory = tempfile.TemporaryDirectory(prefix="egtr-audit-")
    if openvino:
        from egtr.export.exporter import export_model, load_backend

        export_model(model, directory.name, ["openvino"])
        backends["openvino bf16"] = load_backend("openvino", directory.name, "bf16")
    reference = TorchBackend(model, "cpu")
    generator = torch.Generator().manual_seed(1)
    count, failures = 0, []
    batches = [[size] for size in MODEL_SIZES] + [list(pair) for pair in itertools.pairwise(MODEL_SIZES)]
    for sizes in batches:
        height, width = max(h for h, _ in sizes), max(w for _, w in sizes)
        pixels = torch.zeros(len(sizes), 3, height, width)
        mask = torch.zeros(len(sizes), height, width, dtype=torch.bool)
        for index, (h, w) in enumerate(sizes):
            pixels[index, :, :h, :w] = torch.randn(3, h, w, generator=generator)
            mask[index, :h, :w] = True
        expected = reference.run(pixels, mask)
        for name, backend in backends.items():
            got = backend.run(pixels, mask)
            for output in ("logits", "pred_boxes"):
                count += 1
                failure = judge(
                    f"{name} {preset} {sizes} {output}", getattr(got, output), getattr(expected, output)
                )
                if failure and (
                    failure["nan"] or failure["max_abs_error"] > 5 * SHARE * failure["reference_scale"]
                ):
                    failures.append(failure)
    directory.cleanup()
    return count, failures


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--json", action="store_true", help="print JSON (default: text)")
    parser.add_argument(
        "--presets",
        nargs="*",
        default=["small", "visual_genome"],
        help="models to audit whole (default: %(default)s)",
    )
    parser.add_argument("--no-openvino", action="store_true", help="skip the OpenVINO bf16 model audit")
    args = parser.parse_args()
    if os.environ.get("MALLOC_PERTURB_") != str(PERTURB):  # freed heap memory reads as NaN from here on
        os.execve(
            sys.executable, [sys.executable, *sys.argv], {**os.environ, "MALLOC_PERTURB_": str(PERTURB)}
        )
    count, failures = audit()
    for preset in args.presets:
        more, found = model_audit(preset, not args.no_openvino)
        count, failures = count + more, failures + found
    if args.json:
        report = {"machine": describe(), "native_bf16": native_bf16(), "cases": count}
        print(json.dumps({**report, "failures": failures, "worked_around": WORKED_AROUND}))
        return
    print(describe())
    print(f"native bf16: {native_bf16()}; {count} cases, {len(failures)} failed")
    print(f"{len(WORKED_AROUND)} raw-kernel failures routed around by models/backbone.py:conv2d")
    for name in WORKED_AROUND[:8]:
        print(f"  {name}")
    for failure in failures:
        print(
            f"  {failure['case']}: nan {failure['nan']}, max abs error {failure['max_abs_error']:.3g} "
            f"(reference scale {failure['reference_scale']:.3g})"
        )


if __name__ == "__main__":
    main()
