"""Names a package exposes without importing their modules until first used (`egtr --help` and installs
without the optional extras stay cheap).

    _LAZY = {"SceneGraphPredictor": "egtr.inference.predictor"}
    __getattr__ = lazy_attributes(__name__, _LAZY)
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_attributes(package: str, table: Mapping[str, str]) -> Callable[[str], Any]:
    """A module-level `__getattr__` for `package`: a name of `table` is taken from its module on first use."""

    def __getattr__(name: str) -> Any:
        if name in table:
            return getattr(importlib.import_module(table[name]), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
