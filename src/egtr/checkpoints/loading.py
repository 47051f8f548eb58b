"""`load_model`: any supported file or directory (the package docstring lists them) -> an EGTR in eval mode;
`load_backbone_file`: ImageNet ResNet weights into a model's backbone."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from egtr.checkpoints.native import NATIVE_WEIGHTS, load_native, load_trainer_checkpoint
from egtr.checkpoints.official import highest_epoch_checkpoint, load_official_detector, load_official_egtr
from egtr.checkpoints.safety import torch_load_safely
from egtr.models.backbone import load_backbone_weights
from egtr.models.egtr import EGTR


def load_model(path: str | Path, map_location: str | torch.device = "cpu") -> EGTR:
    """Load an EGTR model from any supported file or directory (module docstring). Returns it in eval mode."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or directory")
    model = _dispatch(path, map_location)
    return model.to(map_location).eval()


def _dispatch(path: Path, map_location: str | torch.device) -> EGTR:
    if path.is_dir():
        if (path / NATIVE_WEIGHTS).is_file():
            return load_native(path / NATIVE_WEIGHTS, map_location)
        if (path / "config.json").is_file() and (path / "pytorch_model.bin").is_file():
            return load_official_detector(path)
        if (path / "config.json").is_file() and (path / "checkpoints").is_dir():
            return _dispatch(highest_epoch_checkpoint(path / "checkpoints"), map_location)
        raise ValueError(
            f"{path}: not a model directory; expected {NATIVE_WEIGHTS} (this project), config.json + "
            "checkpoints/*.ckpt (official EGTR artifact) or config.json + pytorch_model.bin"
            " (official pretrained detector)"
        )
    if path.suffix == ".safetensors":
        return load_native(path, map_location)
    if path.name == "pytorch_model.bin":
        return load_official_detector(path.parent)
    if path.suffix in (".ckpt", ".pt", ".pth"):
        content = torch_load_safely(path)
        if not isinstance(content, dict):
            raise ValueError(f"{path}: expected a checkpoint dictionary, found {type(content).__name__}")
        if "egtr_config" in content:
            return load_trainer_checkpoint(path, content)
        for config_path in (path.parent.parent / "config.json", path.parent / "config.json"):
            if config_path.is_file():
                return load_official_egtr(path, config_path, content)
        raise ValueError(
            f"{path}: an official EGTR checkpoint needs its config.json in the artifact directory "
            f"({path.parent.parent / 'config.json'}); pass the unzipped artifact directory"
        )
    raise ValueError(
        f"{path}: unknown model file type {path.suffix!r} (use .safetensors, .ckpt or a directory)"
    )


def load_backbone_file(model: EGTR, path: str | Path) -> None:
    """Load ImageNet ResNet weights (torchvision `.pth` or timm `.safetensors`/`.pth`) into the backbone."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: backbone weights file not found")
    if path.suffix == ".safetensors":
        try:
            state = load_file(str(path))
        except SafetensorError as error:
            raise ValueError(f"{path}: unreadable safetensors file ({error})") from error
    else:
        state = torch_load_safely(path)
        if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
            state = state["state_dict"]
    if not isinstance(state, dict):
        raise ValueError(f"{path}: expected a state dict of ResNet weights")
    load_backbone_weights(model.detector.backbone, state, str(path))
