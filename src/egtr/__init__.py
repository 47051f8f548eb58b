"""egtr: EGTR scene graph generation (CVPR 2024) in plain PyTorch.

Public API (the README's "Python API"; the data flow between them: architecture.md §4): EGTRConfig, EGTR,
EGTROutput, load_model, save_model, SceneGraphPredictor, SceneGraph, and the `egtr.evaluation` package.
"""

from __future__ import annotations

import importlib
from typing import Any

from egtr.config import EGTRConfig

__version__ = "0.1.0"

_LAZY = {
    "EGTR": "egtr.models.egtr",
    "EGTROutput": "egtr.models.outputs",
    "load_model": "egtr.checkpoints",
    "save_model": "egtr.checkpoints",
    "SceneGraphPredictor": "egtr.inference.predictor",
    "SceneGraph": "egtr.inference.scene_graph",
}

__all__ = ["EGTRConfig", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    if name in ("evaluation", "training", "data", "inference", "models"):
        return importlib.import_module(f"egtr.{name}")
    raise AttributeError(f"module 'egtr' has no attribute {name!r}")
