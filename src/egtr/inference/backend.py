"""Runtime backends: what runs the network for the predictor, behind one method.

A backend takes a padded pixel batch and its mask and returns the model's raw outputs (`RawOutputs`: class
logits, boxes, predicate logits with the frequency bias, connectivity logits). Everything above it
(relation scores with or without logit adjustment, post-processing, triplet selection, JSON) is shared
Python, so every backend gives the same scene graph from the same raw outputs. `TorchBackend` runs an
`egtr.EGTR` eagerly (in fp32, or bf16/fp16 autocast); `egtr.export` adds ONNX Runtime and OpenVINO
backends for exported models.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import torch
from torch import Tensor

from egtr.config import EGTRConfig
from egtr.devices import resolve_device
from egtr.models.egtr import EGTR, relation_probabilities
from egtr.models.outputs import EGTROutput
from egtr.precision import autocast, check_precision


@dataclass
class ScoredOutputs:
    """Raw outputs turned into scores: what post-processing reads (B images, N queries)."""

    logits: Tensor  # [B,N,C]
    pred_boxes: Tensor  # [B,N,4] normalized (cx, cy, w, h) of the unpadded image
    pred_rel: Tensor  # [B,N,N,R] predicate probabilities (after logit adjustment when enabled)
    pred_connectivity: Tensor  # [B,N,N]


@dataclass
class RawOutputs:
    """The model's raw outputs for B images: the same four tensors from every backend."""

    logits: Tensor  # [B,N,C] class logits
    pred_boxes: Tensor  # [B,N,4] normalized (cx, cy, w, h) of the unpadded image
    rel_logits: Tensor  # [B,N,N,R] predicate logits, frequency bias included, no logit adjustment
    connectivity_logits: Tensor | None  # [B,N,N], None when the model has no connectivity head
    model_output: EGTROutput | None = None  # the PyTorch model's whole output (for explanations)

    def scored(self, config: EGTRConfig, rel_dist: Tensor | None) -> ScoredOutputs:
        """Relation and connectivity probabilities as the model's own forward computes them."""
        pred_rel, pred_connectivity = relation_probabilities(
            self.rel_logits, self.connectivity_logits, config, rel_dist
        )
        return ScoredOutputs(self.logits, self.pred_boxes, pred_rel, pred_connectivity)


@runtime_checkable
class Backend(Protocol):
    """Runs the network. `config` is the model's EGTRConfig (the predictor reads and may adjust its
    `logit_adjustment` / `logit_adj_tau`), `rel_dist` [R] its predicate prior (None without one)."""

    name: str  # "torch", "onnxruntime", "openvino"
    config: EGTRConfig
    rel_dist: Tensor | None
    device: torch.device  # where `run` wants its inputs
    precision: str  # "fp32", "bf16" or "fp16": what the float arithmetic computes in
    quantization: dict | None  # an INT8 export's quantization settings (egtr.export.int8), else None
    explains: bool  # whether RawOutputs.model_output is filled (needed for explanations)

    def run(self, pixel_values: Tensor, pixel_mask: Tensor) -> RawOutputs:
        """pixel_values float [B,3,H,W] normalized and zero-padded; pixel_mask bool [B,H,W] (True = real)."""
        ...


class TorchBackend:
    """An `egtr.EGTR` run eagerly by PyTorch under `torch.inference_mode()`, in fp32 or autocast.

    Under bf16 / fp16 the pixels go in channels-last, so that the backbone's convolutions run in the
    layout oneDNN's reduced-precision kernels (AMX, AVX512-BF16) compute in: in the default layout every
    convolution's output is converted back and forth, which costs more than the bf16 arithmetic saves (one
    Visual Genome forward at 600x1000 on one AMX core: 3.0 s of CPU in channels-first bf16, 1.8 s
    channels-last, 3.3 s fp32; BENCHMARKS.md). fp32 keeps the default layout.
    """

    name = "torch"
    explains = True
    quantization = None

    def __init__(
        self, model: EGTR, device: str | torch.device | None = None, precision: str = "fp32"
    ) -> None:
        self.device = resolve_device(device)
        self.precision = check_precision(precision)
        self.model = model.eval().to(self.device)
        self.config = model.config

    @property
    def rel_dist(self) -> Tensor | None:
        return self.model.rel_dist

    def to(self, device: str | torch.device) -> TorchBackend:
        """Run on `device` from now on (the model moves there); e.g. the GPU a process is given."""
        self.device = resolve_device(device)
        self.model.to(self.device)
        return self

    @torch.inference_mode()
    def run(self, pixel_values: Tensor, pixel_mask: Tensor) -> RawOutputs:
        pixel_values = pixel_values.to(self.device)
        if self.precision != "fp32":
            pixel_values = pixel_values.contiguous(memory_format=torch.channels_last)
        with autocast(self.device, self.precision):
            output = self.model(pixel_values, pixel_mask.to(self.device))
        return RawOutputs(
            output.logits, output.pred_boxes, output.rel_logits, output.connectivity_logits, output
        )
