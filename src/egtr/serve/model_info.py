"""What `GET /v1/model` tells a client: names, a config summary, preprocessing, defaults, limits and the
memory bound they give (memory_bound.py)."""

from __future__ import annotations

from dataclasses import asdict

from egtr.data.images import WEB_FORMATS
from egtr.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from egtr.inference.predictor import SceneGraphPredictor
from egtr.serve.limits import ServerLimits
from egtr.serve.memory_bound import memory_bound

CONFIG_SUMMARY = (
    "num_labels",
    "num_rel_labels",
    "num_queries",
    "backbone_depth",
    "d_model",
    "encoder_layers",
    "decoder_layers",
    "num_feature_levels",
    "use_connectivity",
    "use_freq_bias",
    "logit_adjustment",
)


def model_info(predictor: SceneGraphPredictor, name: str, limits: ServerLimits, workers: int = 1) -> dict:
    """`limits` and `memory` are per worker process; `workers` processes answer on the port."""
    config = predictor.config
    triplets = predictor.default_selection.triplets
    return {
        "name": name,
        "device": str(predictor.device),
        "backend": predictor.backend.name,
        "precision": predictor.backend.precision,
        "parameters": parameter_count(predictor.backend),
        "config": {key: getattr(config, key) for key in CONFIG_SUMMARY},
        "classes": predictor.vocabulary.class_names,
        "predicates": predictor.vocabulary.predicate_names,
        "names_source": predictor.vocabulary.source,
        "preprocessing": {
            "size": predictor.size,
            "max_size": predictor.max_size,
            "mean": list(IMAGENET_MEAN),
            "std": list(IMAGENET_STD),
            "exif_orientation": predictor.reading.exif,
            "image_conversion": predictor.reading.conversion,
            "formats": list(WEB_FORMATS),
        },
        "defaults": asdict(triplets),
        "limits": limits.public(),
        "memory": memory_bound(limits),
        "workers": workers,
    }


def parameter_count(backend) -> int | None:
    """The network's parameter count where the backend holds the PyTorch model, else None (an OpenVINO
    backend's `model` is its compiled graph)."""
    import torch

    model = getattr(backend, "model", None)
    if not isinstance(model, torch.nn.Module):
        return None
    return sum(parameter.numel() for parameter in model.parameters())
