"""Which device a command runs on: one vocabulary for every command, resolved in one place.

Inference commands (predict, serve, evaluate, benchmark, analyze) take a torch device: "auto" (CUDA when
available, else the CPU), "cpu", "cuda" or "cuda:N"; "gpu" is accepted for "cuda". Training commands
(demo, ablate, train) hand the same names to Lightning as its accelerator ("cuda" and "gpu" are the same
there), where "auto" also means CUDA when available.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

INFERENCE_DEVICES = "auto, cpu, cuda or cuda:N"  # what --device takes in the inference commands
TRAINING_DEVICES = "auto, cpu or cuda"  # what --device takes in the training commands (no GPU index)
CUDA_NAMES = ("cuda", "gpu", "auto")  # accelerator names that run on CUDA when it is available


def resolve_device(device: str | torch.device | None) -> torch.device:
    """None/"auto": CUDA when available, else the CPU; "gpu" means "cuda"; any torch device string works.

    Raises ValueError for a CUDA device on a machine without CUDA or with fewer GPUs than its index.
    """
    import torch

    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    name = str(device)
    try:
        device = torch.device("cuda" + name[3:] if name.startswith("gpu") else name)
    except RuntimeError as error:
        raise ValueError(f"unknown device {name!r}: use {INFERENCE_DEVICES}") from error
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {device} requested but CUDA is not available (use --device cpu)")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(
                f"device {device} requested but this machine has {torch.cuda.device_count()} GPU(s)"
            )
    return device


def uses_cuda(accelerator: str) -> bool:
    """Whether Lightning's `accelerator` ("cpu", "cuda", "gpu", "auto") trains on CUDA on this machine."""
    import torch

    return accelerator in CUDA_NAMES and torch.cuda.is_available()
