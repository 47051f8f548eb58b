"""The dependency floors in pyproject.toml keep the README's promises: checkpoints are never unpickled
beyond tensors (torch >= 2.6: weights_only is a safety boundary and the default) and resuming passes
weights_only to Lightning (lightning >= 2.6: the first whose Trainer.fit takes it)."""

import inspect
import re
from pathlib import Path

import lightning
import pytest
import torch
from lightning.pytorch import Trainer

ROOT = Path(__file__).resolve().parents[1]


def floor(package: str) -> tuple[int, ...]:
    text = (ROOT / "pyproject.toml").read_text()
    found = re.search(rf'"{package}>=([\d.]+)"', text)
    assert found, f"no floor for {package}"
    return tuple(int(part) for part in found.group(1).split("."))


def version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.match(r"[\d.]+", text).group(0).rstrip(".").split("."))


def test_the_floors_are_the_promised_versions_and_installed():
    assert floor("torch") == (2, 6) and floor("lightning") == (2, 6)
    assert version(torch.__version__)[:2] >= floor("torch")
    assert version(lightning.__version__)[:2] >= floor("lightning")


class Unsafe:
    def __reduce__(self):
        return (print, ("unpickled",))


def test_torch_load_refuses_objects_by_default(tmp_path):
    """From torch 2.6 on, torch.load's default is weights_only=True: even a call without it is safe."""
    path = tmp_path / "x.pt"
    torch.save({"object": Unsafe()}, path)
    with pytest.raises(Exception, match="Weights only load failed"):
        torch.load(path)


def test_lightning_fit_takes_weights_only_and_the_engine_passes_it():
    assert "weights_only" in inspect.signature(Trainer.fit).parameters
    run = (ROOT / "src" / "egtr" / "engine" / "run.py").read_text()
    assert "weights_only=True" in run
