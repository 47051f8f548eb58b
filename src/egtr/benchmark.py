"""A fixed speed/memory protocol for the model: the numbers `egtr benchmark` prints.

Inference: one random input of the given size (default 600x1000, the paper's FPS setting) and batch size,
`warmup` untimed forward passes, then `repeats` timed passes under `torch.inference_mode()` and the chosen
precision (`egtr.precision.autocast`), optionally through `torch.compile`; the median latency is reported,
with images/s, the memory one forward pass adds, the peak memory of the whole process, and the relation
head's own median time. Data loading is excluded (the official FPS included it).

Training step: forward, the EGTR loss on random targets, backward and an AdamW step, in training mode at
the chosen precision (bf16/fp16 autocast as Lightning's `*-mixed` precisions; no loss scaling), median of
`repeats` after `warmup`.
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
from egtr.precision import autocast, check_precision, precision_note


@dataclass
class BenchmarkResult:
    device: str
    precision: str
    compiled: bool
    batch_size: int
    height: int
    width: int
    threads: int
    parameters: int
    latency_ms: float  # median full forward
    images_per_second: float
    peak_memory_mb: float  # memory added by one forward pass
    peak_process_memory_mb: float  # CPU: peak resident memory of the process; CUDA: peak allocated
    relation_head_ms: float  # median relation head (incl. frequency bias) on the same inputs
    relation_head_share: float  # relation_head_ms / latency_ms
    repeats: int
    warmup: int
    note: str | None  # why this precision may be slow here (CPU without native bf16/fp16)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class TrainingStepResult:
    device: str
    precision: str
    batch_size: int
    height: int
    width: int
    step_ms: float  # median of forward + loss + backward + optimizer step
    peak_memory_mb: float  # memory added by one step
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


def _status_kb(field: str) -> int:
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
    baseline = _status_kb("VmRSS")
    run()
    return (_status_kb("VmHWM") - baseline) / 1024


def peak_process_memory_mb(device: torch.device) -> float:
    """CPU: the process's peak resident memory so far (VmHWM); CUDA: the allocator's peak since the last
    reset (weights included)."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return _status_kb("VmHWM") / 1024


def device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else str(device)


def benchmark_model(
    model: EGTR,
    height: int = 600,
    width: int = 1000,
    batch_size: int = 1,
    device: str | torch.device = "cpu",
    precision: str = "fp32",
    warmup: int = 2,
    repeats: int = 5,
    compile: bool = False,
) -> BenchmarkResult:
    """Run the inference protocol (module docstring) on `model` and return the measurements."""
    check_precision(precision)
    if warmup < 0 or repeats < 1:
        raise ValueError("warmup must be >= 0 and repeats >= 1")
    device = torch.device(device)
    model = model.to(device).eval()
    forward_model = torch.compile(model) if compile else model
    pixels = torch.randn(batch_size, 3, height, width, device=device)
    mask = torch.ones(batch_size, height, width, dtype=torch.bool, device=device)

    def forward() -> object:
        with torch.inference_mode(), autocast(device, precision):
            return forward_model(pixels, mask)

    with torch.inference_mode(), autocast(device, precision):
        detection = model.detector(pixels, mask)

    def relation_head() -> object:
        with torch.inference_mode(), autocast(device, precision):
            out = model.relation_head(
                detection.attention_queries, detection.attention_keys, detection.last_hidden_state
            )
            if model.frequency_bias is not None:
                out = model.frequency_bias(detection.logits) + out[0]
            return out

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    latency = median_time_ms(forward, device, max(warmup, 1) if compile else warmup, repeats)
    process_memory = peak_process_memory_mb(device)
    relation_ms = median_time_ms(relation_head, device, min(warmup, 1), repeats)
    memory = peak_memory_mb(forward, device)
    return BenchmarkResult(
        device=device_name(device),
        precision=precision,
        compiled=compile,
        batch_size=batch_size,
        height=height,
        width=width,
        threads=torch.get_num_threads(),
        parameters=sum(p.numel() for p in model.parameters()),
        latency_ms=latency,
        images_per_second=batch_size * 1000 / latency,
        peak_memory_mb=memory,
        peak_process_memory_mb=process_memory,
        relation_head_ms=relation_ms,
        relation_head_share=relation_ms / latency,
        repeats=repeats,
        warmup=warmup,
        note=precision_note(device, precision),
    )


def random_targets(
    batch_size: int, num_labels: int, num_relations: int, boxes: int, relations: int, seed: int = 0
) -> list[dict[str, torch.Tensor]]:
    """Targets in the criterion's format (labels, normalized cxcywh boxes, (subject, object, predicate))."""
    generator = torch.Generator().manual_seed(seed)
    targets = []
    for _ in range(batch_size):
        centres = 0.2 + 0.6 * torch.rand(boxes, 2, generator=generator)
        sizes = 0.05 + 0.3 * torch.rand(boxes, 2, generator=generator)
        triplets = torch.stack(
            [
                torch.randint(0, boxes, (relations,), generator=generator),
                torch.randint(0, boxes, (relations,), generator=generator),
                torch.randint(0, num_relations, (relations,), generator=generator),
            ],
            1,
        )
        targets.append(
            {
                "labels": torch.randint(0, num_labels, (boxes,), generator=generator),
                "boxes": torch.cat([centres, sizes], 1),
                "relations": triplets,
            }
        )
    return targets


def benchmark_training_step(
    model: EGTR,
    height: int = 600,
    width: int = 1000,
    batch_size: int = 4,
    device: str | torch.device = "cpu",
    precision: str = "fp32",
    warmup: int = 1,
    repeats: int = 3,
    boxes: int = 10,
    relations: int = 8,
) -> TrainingStepResult:
    """Time one training step (module docstring) on random images and targets; `model` is trained in place
    (its weights change)."""
    from egtr.training import EGTRCriterion

    check_precision(precision)
    device = torch.device(device)
    config = model.config
    model = model.to(device).train()
    criterion = EGTRCriterion(config).to(device).train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-6)
    pixels = torch.randn(batch_size, 3, height, width, device=device)
    mask = torch.ones(batch_size, height, width, dtype=torch.bool, device=device)
    targets = [
        {key: value.to(device) for key, value in target.items()}
        for target in random_targets(
            batch_size, config.num_labels, config.num_rel_labels, min(boxes, config.num_queries), relations
        )
    ]

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with autocast(device, precision):
            losses = criterion(model(pixels, mask), targets)
        losses["loss"].backward()
        optimizer.step()

    step_ms = median_time_ms(step, device, warmup, repeats)
    memory = peak_memory_mb(step, device)
    return TrainingStepResult(
        device=device_name(device),
        precision=precision,
        batch_size=batch_size,
        height=height,
        width=width,
        step_ms=step_ms,
        peak_memory_mb=memory,
        repeats=repeats,
        warmup=warmup,
    )
