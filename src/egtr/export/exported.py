"""What the ONNX Runtime and OpenVINO backends share: an exported model's metadata and its raw outputs.

Both runtimes return numpy arrays by output name; `ExportedModel.raw_outputs` turns them into the
`RawOutputs` every backend returns, after checking their names and shapes against the metadata.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from egtr.export.formats import runtime
from egtr.export.metadata import ExportMetadata, output_names
from egtr.inference.backend import RawOutputs


def chosen_precision(name: str, precision: str | None, metadata: ExportMetadata) -> str:
    """The precision the `name` backend runs an export in: `precision`, or the export's own when None;
    ValueError when the backend does not run it (the format table's precisions)."""
    return runtime(name).check_precision(metadata.precision if precision is None else precision)


class ExportedModel:
    """Base of the exported-model backends (egtr.inference.backend.Backend); `run` is theirs.

    `precision` is what the float parts compute in (chosen_precision); `quantization` the export's INT8
    settings (None for a float export)."""

    name = "exported"
    explains = False  # the graph returns the raw outputs only, not the attention by-products

    def __init__(self, path: Path, metadata: ExportMetadata, precision: str) -> None:
        self.path = path
        self.metadata = metadata
        self.config = metadata.config
        self.rel_dist = metadata.rel_dist_tensor()
        self.device = torch.device("cpu")
        self.precision = precision
        self.quantization = metadata.quantization

    def inputs(self, pixel_values, pixel_mask) -> dict[str, np.ndarray]:
        """The graph's inputs as numpy: float32 pixels [B,3,H,W], bool mask [B,H,W]."""
        pixels = np.ascontiguousarray(pixel_values.detach().cpu().numpy(), dtype=np.float32)
        mask = np.ascontiguousarray(pixel_mask.detach().cpu().numpy(), dtype=bool)
        if pixels.ndim != 4 or pixels.shape[1] != 3 or mask.shape != (pixels.shape[0], *pixels.shape[2:]):
            raise ValueError(
                f"pixel_values must be [B,3,H,W] and pixel_mask [B,H,W], got {list(pixels.shape)} and "
                f"{list(mask.shape)}"
            )
        return {"pixel_values": pixels, "pixel_mask": mask}

    def raw_outputs(self, arrays: dict[str, np.ndarray], batch: int) -> RawOutputs:
        names = output_names(self.config)
        missing = [name for name in names if name not in arrays]
        if missing:
            raise ValueError(f"{self.path}: the graph does not return {', '.join(missing)}")
        tensors = {name: torch.from_numpy(np.asarray(arrays[name])) for name in names}
        queries = self.config.num_queries
        expected = {
            "logits": (batch, queries, self.config.num_labels),
            "pred_boxes": (batch, queries, 4),
            "rel_logits": (batch, queries, queries, self.config.num_rel_labels),
            "connectivity_logits": (batch, queries, queries),
        }
        for name, tensor in tensors.items():
            if tuple(tensor.shape) != expected[name]:
                raise ValueError(
                    f"{self.path}: output {name} has shape {list(tensor.shape)}, the metadata says "
                    f"{list(expected[name])}"
                )
        return RawOutputs(
            tensors["logits"],
            tensors["pred_boxes"],
            tensors["rel_logits"],
            tensors.get("connectivity_logits"),
        )
