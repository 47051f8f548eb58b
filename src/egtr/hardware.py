"""What the machine has: CPU model and instruction-set flags, native reduced-precision and int8 support,
GPU name.

Benchmarks print `describe()` so that every number names the machine it was measured on, and the
precision switches use `native_bf16()` / `native_fp16()` to say when a CPU would emulate a dtype (bf16
autocast on an AVX2-only CPU runs many times slower than fp32).
"""

from __future__ import annotations

import functools
import os
import platform
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

# x86 flags (Linux /proc/cpuinfo names) that give native arithmetic in a reduced precision
BF16_FLAGS = ("amx_bf16", "avx512_bf16")
FP16_FLAGS = ("amx_fp16", "avx512_fp16")
INT8_FLAGS = ("amx_int8", "avx512_vnni", "avx_vnni")  # int8 dot products (VNNI) or int8 tiles (AMX)
REPORTED_FLAGS = ("avx2", "fma", "avx512f", *BF16_FLAGS, *FP16_FLAGS, *INT8_FLAGS, "amx_tile")


@functools.cache
def _cpuinfo() -> dict[str, str]:
    """The first processor's fields of /proc/cpuinfo (empty where there is none)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return {}
    fields: dict[str, str] = {}
    for line in text.split("\n\n")[0].splitlines():
        key, _, value = line.partition(":")
        fields[key.strip()] = value.strip()
    return fields


def cpu_model() -> str:
    """The CPU's marketing name, e.g. 'AMD EPYC' or 'Intel(R) Xeon(R) Platinum 8480+'."""
    info = _cpuinfo()
    return info.get("model name") or info.get("Model") or platform.processor() or platform.machine()


def cpu_flags() -> frozenset[str]:
    """Instruction-set flags of the CPU (x86 'flags', ARM 'Features'); empty when unknown."""
    info = _cpuinfo()
    return frozenset((info.get("flags") or info.get("Features") or "").split())


def native_bf16() -> bool:
    """True when the CPU computes bf16 natively (AMX-BF16 / AVX512-BF16 on x86, BF16 on ARM)."""
    flags = cpu_flags()
    return any(flag in flags for flag in BF16_FLAGS) or "bf16" in flags


def native_fp16() -> bool:
    """True when the CPU computes fp16 natively (AMX-FP16 / AVX512-FP16 on x86, FP16 arithmetic on ARM)."""
    flags = cpu_flags()
    return any(flag in flags for flag in FP16_FLAGS) or "asimdhp" in flags


def native_int8() -> bool:
    """True when the CPU has int8 dot-product instructions (AVX512-VNNI / AVX-VNNI / AMX-INT8 on x86,
    the dot-product extension on ARM): what INT8 models need to run faster than float32."""
    flags = cpu_flags()
    return any(flag in flags for flag in INT8_FLAGS) or "asimddp" in flags


def describe(device: str | torch.device = "cpu") -> str:
    """One line naming the machine: CPU model, cores, relevant flags and torch threads (and the GPU)."""
    import torch

    flags = cpu_flags()
    shown = [flag for flag in REPORTED_FLAGS if flag in flags]
    line = (
        f"CPU {cpu_model()} ({os.cpu_count()} logical cores; flags {' '.join(shown) or 'unknown'}), "
        f"torch {torch.__version__} with {torch.get_num_threads()} threads"
    )
    device = torch.device(device)
    if device.type == "cuda" and torch.cuda.is_available():
        line += f"; GPU {torch.cuda.get_device_name(device)}"
    return line
