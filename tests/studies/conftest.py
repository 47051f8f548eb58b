"""A tiny synthetic dataset and tiny random-weight models sized to it."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from egtr import EGTRConfig
from egtr.data import load_dataset
from egtr.models.egtr import EGTR
from tests.engine.conftest import write_dataset
from tests.inference.conftest import one_torch_thread  # noqa: F401 (autouse fixture)

SIZE = 64


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory) -> Path:
    """4 training, 3 validation and 3 test images of the synthetic world at 64 px."""
    return write_dataset(tmp_path_factory.mktemp("studies") / "data", list(range(4)), eval_count=3)


def tiny_model(data: Path, seed: int = 0, **overrides) -> EGTR:
    split = load_dataset(data, "test")
    config = EGTRConfig.small(
        **{
            "num_labels": split.num_classes,
            "num_rel_labels": split.num_predicates,
            "num_queries": 10,
            "encoder_layers": 1,
            "decoder_layers": 2,
            "dropout": 0.0,
            **overrides,
        }
    )
    torch.manual_seed(seed)
    return EGTR(config).eval()
