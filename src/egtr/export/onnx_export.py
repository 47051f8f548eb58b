"""EGTR -> ONNX: the network's raw outputs as an ONNX graph with dynamic batch, height and width.

The graph takes `pixel_values` float32 [B,3,H,W] (normalized, zero-padded) and `pixel_mask` bool [B,H,W]
(True = real pixel) and returns the raw outputs `logits` [B,N,C], `pred_boxes` [B,N,4], `rel_logits`
[B,N,N,R] (frequency bias included, no logit adjustment) and, when the model has a connectivity head,
`connectivity_logits` [B,N,N]. Scores, post-processing and triplets stay in Python
(egtr.inference.backend), shared with the PyTorch path.

Exporter: the TorchScript-based `torch.onnx.export(dynamo=False)`. The torch.export-based one
(`dynamo=True`) specializes every feature-map side of 0 or 1 (small or very wide images would not run)
and bakes the level sizes into the graph, and it takes several times longer; the traced graph keeps
every size computed from the input, which `egtr export` verifies by running the exported model on a
batch of another size and count against PyTorch (egtr.export.check).
"""

from __future__ import annotations

import contextlib
import io
import os
import warnings
from collections.abc import Iterator
from pathlib import Path

import torch
from torch import Tensor, nn

from egtr.export.diagnosis import ExportError, ModuleStack, onnx_failure
from egtr.export.metadata import INPUT_NAMES, KEYS, ExportMetadata, output_names
from egtr.files import write_atomically
from egtr.models.egtr import EGTR

DEFAULT_OPSET = 17
OPSETS = range(17, 21)  # 17 (GridSample, LayerNormalization) up to the TorchScript exporter's newest
# traced at batch 2 with the second image padded, at a size where no feature map has a side of 1
TRACE_BATCH, TRACE_HEIGHT, TRACE_WIDTH, TRACE_PADDED = 2, 128, 160, (96, 128)


class RawOutputModel(nn.Module):
    """The exported function: pixels and mask -> the model's raw outputs, as a tuple in OUTPUT order."""

    def __init__(self, model: EGTR) -> None:
        super().__init__()
        self.model = model  # ONNX node names start with /model/ (egtr.export.diagnosis reads them)

    def forward(self, pixel_values: Tensor, pixel_mask: Tensor) -> tuple[Tensor, ...]:
        output = self.model(pixel_values, pixel_mask)
        raw = (output.logits, output.pred_boxes, output.rel_logits)
        return raw if output.connectivity_logits is None else (*raw, output.connectivity_logits)


def trace_inputs(model: EGTR) -> tuple[Tensor, Tensor]:
    """The example batch the exporter traces: 2 random images, the second one padded."""
    generator = torch.Generator().manual_seed(0)
    pixel_values = torch.randn(TRACE_BATCH, 3, TRACE_HEIGHT, TRACE_WIDTH, generator=generator)
    pixel_mask = torch.ones(TRACE_BATCH, TRACE_HEIGHT, TRACE_WIDTH, dtype=torch.bool)
    height, width = TRACE_PADDED
    pixel_mask[1, height:] = False
    pixel_mask[1, :, width:] = False
    pixel_values[1, :, height:] = 0
    pixel_values[1, :, :, width:] = 0
    device = next(model.parameters()).device
    return pixel_values.to(device), pixel_mask.to(device)


def dynamic_axes(config) -> dict[str, dict[int, str]]:
    axes = {
        "pixel_values": {0: "batch", 2: "height", 3: "width"},
        "pixel_mask": {0: "batch", 1: "height", 2: "width"},
    }
    for name in output_names(config):
        axes[name] = {0: "batch"}
    return axes


@contextlib.contextmanager
def silenced_stdout() -> Iterator[None]:
    """Send file descriptor 1 to /dev/null: when it fails, the exporter's C++ log prints its whole graph
    there (thousands of lines), before the error that is reported anyway."""
    saved = os.dup(1)
    with open(os.devnull, "wb") as null:
        try:
            os.dup2(null.fileno(), 1)
            yield
        finally:
            os.dup2(saved, 1)
            os.close(saved)


def onnx_bytes(model: EGTR, opset: int = DEFAULT_OPSET) -> bytes:
    """The serialized ONNX model (without egtr metadata) of `model`'s raw outputs.

    Raises ExportError naming the part of the model that cannot be exported.
    """
    if opset not in OPSETS:
        raise ValueError(f"opset must be between {OPSETS[0]} and {OPSETS[-1]}, got {opset}")
    model = model.eval()
    wrapper = RawOutputModel(model).eval()
    inputs = trace_inputs(model)
    stream = io.BytesIO()
    with ModuleStack(model) as stack:
        try:
            with warnings.catch_warnings(), silenced_stdout(), torch.no_grad():
                # trace-time warnings (Python values treated as constants) are checked by running the
                # export at other sizes instead; the exporter's deprecation notice is not for users
                warnings.simplefilter("ignore")
                torch.onnx.export(
                    wrapper,
                    inputs,
                    stream,
                    dynamo=False,
                    opset_version=opset,
                    input_names=list(INPUT_NAMES),
                    output_names=list(output_names(model.config)),
                    dynamic_axes=dynamic_axes(model.config),
                    do_constant_folding=True,
                )
        except Exception as error:
            raise onnx_failure(model, inputs, error, stack.innermost()) from error
    return stream.getvalue()


def with_metadata(serialized: bytes, metadata: ExportMetadata) -> bytes:
    """The ONNX model with the egtr metadata as metadata_props (replacing any it has)."""
    import onnx

    proto = onnx.load_model_from_string(serialized)
    kept = [(entry.key, entry.value) for entry in proto.metadata_props if entry.key not in KEYS]
    del proto.metadata_props[:]
    for key, value in [*kept, *metadata.to_strings().items()]:
        proto.metadata_props.add(key=key, value=value)
    proto.producer_name = "egtr"
    proto.producer_version = metadata.egtr_version
    proto.doc_string = "EGTR scene graph model: raw outputs (egtr.export.metadata describes the rest)"
    return proto.SerializeToString()


def write_onnx(serialized: bytes, path: str | Path, metadata: ExportMetadata) -> Path:
    """Write an ONNX model (from `onnx_bytes`) with `metadata` to `path`, atomically."""
    serialized = with_metadata(serialized, metadata)
    if len(serialized) >= 2**31:
        raise ExportError(f"{path}: the model is {len(serialized) / 2**30:.1f} GiB, above ONNX's 2 GiB limit")
    return write_atomically(path, lambda stream: stream.write(serialized))
