"""When a model may compute differently from its traced form to hold less memory: eager float32 inference."""

from __future__ import annotations

import torch
from torch import Tensor


def eager_float32_inference(x: Tensor) -> bool:
    """Whether `x` is computed on at inference, eagerly, in float32: no autograd, not traced or compiled,
    no autocast; the only case where the backbone may overwrite its inputs and split its maps into bands,
    and the relation head its pairs."""
    tracing = torch.onnx.is_in_onnx_export() or torch.jit.is_tracing() or torch.compiler.is_compiling()
    inference = not (torch.is_grad_enabled() or tracing or torch.is_autocast_enabled(x.device.type))
    return inference and x.dtype == torch.float32
