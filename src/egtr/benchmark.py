"""A fixed speed/memory protocol for the model: the numbers `egtr benchmark` prints.

Protocol: one input of the given size (default 600x1000, the paper's FPS setting) and batch size, `warmup`
untimed forward passes, then `repeats` timed passes under `torch.inference_mode()`; the median latency is
reported, with images/s, peak memory of one forward pass, and the relation head's own median time. Data
loading is excluded (the official FPS included it).
"""

from __future__ import annotations

import ctypes
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from egtr.models.egtr import EGTR

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


@dataclass
class BenchmarkResult:
    device: str
    dtype: str
    batch_size: int
    height: int
    width: int
    threads: int
    parameters: int
    latency_ms: float  # median full forward
    images_per_second: float
    peak_memory_mb: float  # peak memory added by one forward pass
    relation_head_ms: float  # median relation head (incl. frequency bias) on the same inputs
    relation_head_share: float  # relation_head_ms / latency_ms
    repeats: int
    warmup: int

    def to_dict(self) -> dict:
        return asdict(self)


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def median_time_ms(run: Callable[[], object], device: torch.device, warmup: int, repeats: int) -> float:
    for _ in range(warmup):
        run()
    _synchronize(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        _synchronize(device)
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def _resident_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise OSError(f"/proc/self/status has no {field}")


def peak_memory_mb(run: Callable[[], object], device: torch.device) -> float:
    """Peak memory added while `run()` executes: CUDA allocator peak, or peak RSS growth on CPU (Linux)."""

    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        baseline = torch.cuda.memory_allocated(device)
        run()
        torch.cuda.synchronize(device)
        return (torch.cuda.max_memory_allocated(device) - baseline) / 2**20
    # make freed tensors leave the process at once, so RSS follows live memory: return cached heap memory
    # and serve every allocation above 64 KiB by mmap (glibc; a no-op elsewhere)
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.malloc_trim(0)
        libc.mallopt(-3, 64 * 1024)  # M_MMAP_THRESHOLD
    except OSError:
        pass
    Path("/proc/self/clear_refs").write_text("5")  # reset the peak-RSS counter (VmHWM) to the current RSS
    baseline = _resident_kb("VmRSS")
    run()
    return (_resident_kb("VmHWM") - baseline) / 1024


def benchmark_model(
    model: EGTR,
    height: int = 600,
    width: int = 1000,
    batch_size: int = 1,
    device: str | torch.device = "cpu",
    dtype: str = "float32",
    warmup: int = 2,
    repeats: int = 5,
) -> BenchmarkResult:
    """Run the protocol (module docstring) on `model` and return the measurements."""
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    if warmup < 0 or repeats < 1:
        raise ValueError("warmup must be >= 0 and repeats >= 1")
    device = torch.device(device)
    model = model.to(device).eval()
    pixels = torch.randn(batch_size, 3, height, width, device=device)
    mask = torch.ones(batch_size, height, width, dtype=torch.bool, device=device)
    autocast = torch.autocast(device.type, dtype=DTYPES[dtype], enabled=dtype != "float32")

    def forward() -> object:
        with torch.inference_mode(), autocast:
            return model(pixels, mask)

    with torch.inference_mode(), autocast:
        detection = model.detector(pixels, mask)

    def relation_head() -> object:
        with torch.inference_mode(), autocast:
            out = model.relation_head(
                detection.attention_queries, detection.attention_keys, detection.last_hidden_state
            )
            if model.config.use_freq_bias:
                out = model.frequency_bias(detection.logits) + out[0]
            return out

    latency = median_time_ms(forward, device, warmup, repeats)
    relation_ms = median_time_ms(relation_head, device, min(warmup, 1), repeats)
    memory = peak_memory_mb(forward, device)
    return BenchmarkResult(
        device=str(device) if device.type == "cpu" else torch.cuda.get_device_name(device),
        dtype=dtype,
        batch_size=batch_size,
        height=height,
        width=width,
        threads=torch.get_num_threads(),
        parameters=sum(p.numel() for p in model.parameters()),
        latency_ms=latency,
        images_per_second=batch_size * 1000 / latency,
        peak_memory_mb=memory,
        relation_head_ms=relation_ms,
        relation_head_share=relation_ms / latency,
        repeats=repeats,
        warmup=warmup,
    )
