"""Inference precision: fp32 (exact), or bf16 / fp16 autocast where the hardware computes them natively.

`autocast(device, precision)` is the one context every inference path (predict, evaluate, benchmark) runs
the model under; `precision_note(device, precision)` says when the choice would be slower than fp32
because the CPU emulates the dtype. Multi-scale deformable attention always computes in fp32.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

from egtr.hardware import native_bf16, native_fp16

if TYPE_CHECKING:
    import torch

PRECISIONS = ("fp32", "bf16", "fp16")  # torch is imported only when a precision is used: --help needs none


def check_precision(precision: str) -> str:
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    return precision


def autocast(device: str | torch.device, precision: str) -> contextlib.AbstractContextManager:
    """Autocast to the precision's dtype on `device` (a no-op context for fp32)."""
    check_precision(precision)
    if precision == "fp32":
        return contextlib.nullcontext()
    import torch

    return torch.autocast(torch.device(device).type, dtype=torch_dtype(precision))


def torch_dtype(precision: str) -> torch.dtype:
    """The torch dtype of a precision name."""
    import torch

    check_precision(precision)
    return {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]


def precision_note(device: str | torch.device, precision: str) -> str | None:
    """A warning when `precision` on `device` is emulated (slower than fp32), else None."""
    import torch

    check_precision(precision)
    device = torch.device(device)
    if precision == "fp32" or device.type != "cpu":
        return None
    native = native_bf16() if precision == "bf16" else native_fp16()
    if native:
        return None
    return (
        f"this CPU has no native {precision} arithmetic (no AMX/AVX512-{precision.upper()}): "
        f"{precision} is emulated and runs slower than fp32 here"
    )
