"""Exported small models, shared by the export tests (exporting takes seconds: each is made once).

- `small_export`: the small config (12 queries) with frequency statistics, exported to ONNX and OpenVINO
  through the Python API;
- `tiny_export`: a one-layer, one-level model without connectivity head and frequency bias whose class
  logits are all very negative (no confident object), saved as a checkpoint and exported by `egtr export`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from egtr import EGTRConfig
from egtr.checkpoints import save_model
from egtr.cli import main
from egtr.export.exporter import export_metadata, export_model, load_backend
from egtr.models.egtr import EGTR

from ..inference.conftest import one_torch_thread  # noqa: F401 (autouse: one torch thread)


def model_with_statistics(config: EGTRConfig, seed: int = 0) -> EGTR:
    """Random weights and random triplet counts (a non-trivial frequency bias and predicate prior)."""
    torch.manual_seed(seed)
    model = EGTR(config).eval()
    if model.frequency_bias is not None:
        classes, predicates = config.num_labels + 1, config.num_rel_labels
        model.set_frequency_statistics(torch.randint(0, 6, (classes, classes, predicates)))
    return model


@dataclass
class Exported:
    model: EGTR  # the PyTorch model that was exported
    folder: Path  # model.onnx, model.xml, model.bin

    def backend(self, name: str, **options):
        return load_backend(name, self.folder, threads=1, **options)


@pytest.fixture(scope="session")
def small_export(tmp_path_factory) -> Exported:
    model = model_with_statistics(EGTRConfig.small(num_queries=12))
    folder = tmp_path_factory.mktemp("small_export")
    export_model(model, folder, ["onnx", "openvino"], export_metadata(model, size=32, max_size=64))
    return Exported(model, folder)


@pytest.fixture(scope="session")
def small_backends(small_export) -> dict:
    """The small export opened by both runtimes (opening compiles: done once)."""
    return {name: small_export.backend(name) for name in ("onnxruntime", "openvino")}


TINY = {
    "num_queries": 6,
    "encoder_layers": 1,
    "decoder_layers": 1,
    "num_feature_levels": 1,
    "use_connectivity": False,
    "use_freq_bias": False,
    "relation_function": "sum",
}


def tiny_model() -> EGTR:
    torch.manual_seed(3)
    model = EGTR(EGTRConfig.small(**TINY)).eval()
    with torch.no_grad():
        model.detector.class_embed.bias.fill_(-30.0)  # sigmoid scores ~1e-13: no confident object
    return model


@pytest.fixture(scope="session")
def tiny_export(tmp_path_factory) -> Exported:
    """Exported with the CLI (both formats, checked against PyTorch)."""
    model = tiny_model()
    checkpoint = save_model(model, tmp_path_factory.mktemp("tiny") / "model.safetensors")
    folder = tmp_path_factory.mktemp("tiny_export")
    arguments = ["export", str(checkpoint), "--format", "onnx", "openvino", "--out", str(folder)]
    assert main([*arguments, "--size", "32", "--max-size", "64", "--json"]) == 0
    return Exported(model, folder)
