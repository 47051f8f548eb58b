"""INT8 post-training quantization of an export: the settings, the calibration images, the kept modules.

`egtr export CKPT --format openvino|onnx --int8 --calibration DATA_OR_IMAGES` writes the fp32 export, then
rewrites each model file as its INT8 version with the format's quantizer (formats.py: NNCF for OpenVINO,
ONNX Runtime's static quantization for ONNX, each in its own module). Both quantize the weights of the
convolutions and matrix products and their input activations to 8 bits, with scales calibrated on the
calibration images (preprocessed exactly as for prediction, at the export's stored size), and leave every
node of the modules named in `keep_fp32` in floating point.

Kept in floating point by default (`KEEP_FP32`, measured on the demo model: BENCHMARKS.md):
- `sampling_offsets`, `attention_weights` of every deformable attention: they place and weigh the sampling
  points, and a rounded offset moves a point by whole pixels of a coarse level;
- `reference_points`, `class_embed`, `bbox_embed`: the detection heads (boxes must stay within a pixel);
- `relation_head`: the predicate and connectivity MLPs and the gated sum, whose products of two quantized
  terms cost most of the triplet ranking;
- `frequency_bias`: a table lookup, not a matrix product.

Module names are matched against the node names of the exported graph, which are the module paths of
the PyTorch model (`/model/detector/encoder/layers.0/self_attn/sampling_offsets/MatMul`): a name keeps every
node whose module path contains it as whole dot-separated parts ("relation_head", "detector.bbox_embed",
"encoder.layers.5").
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch and numpy are imported when used: `egtr export --help` reads the defaults here
    import numpy as np
    from torch import Tensor

KEEP_FP32 = (
    "sampling_offsets",
    "attention_weights",
    "reference_points",
    "class_embed",
    "bbox_embed",
    "relation_head",
    "frequency_bias",
)
CALIBRATION_SIZE = 32  # images; NNCF's own default is 300, which takes an hour at 800x1333 on 2 cores
SPLIT_ORDER = ("train", "val", "test")  # the split of a dataset folder calibration images come from


@dataclass(frozen=True)
class Int8Settings:
    """What `egtr export --int8` was asked for."""

    calibration: str  # the dataset or image folder (as given)
    calibration_size: int = CALIBRATION_SIZE
    keep_fp32: tuple[str, ...] = KEEP_FP32

    def __post_init__(self) -> None:
        if self.calibration_size < 1:
            raise ValueError(f"calibration_size must be at least 1, got {self.calibration_size}")
        for name in self.keep_fp32:
            if not name or any(not part for part in name.split(".")):
                raise ValueError(f"keep_fp32: {name!r} is not a module name (dot-separated parts)")

    def to_dict(self) -> dict:
        return {**asdict(self), "keep_fp32": list(self.keep_fp32)}


@dataclass
class CalibrationImage:
    source: str
    pixel_values: Tensor  # [3, h, w] normalized, as the predictor prepares it
    size: tuple[int, int]  # (height, width) of the original image


@dataclass
class CalibrationSet:
    """The calibration images of an INT8 export, prepared for the model."""

    source: str  # the folder given
    split: str | None  # the dataset split they come from (None: an image folder)
    images: list[CalibrationImage]
    skipped: list[str] = field(default_factory=list)  # unreadable files, "name: reason"

    def inputs(self) -> list[dict[str, np.ndarray]]:
        """One {"pixel_values": [1,3,h,w] float32, "pixel_mask": [1,h,w] bool} numpy batch per image."""
        import numpy as np

        batches = []
        for image in self.images:
            pixels = np.ascontiguousarray(image.pixel_values[None].numpy(), dtype=np.float32)
            batches.append({"pixel_values": pixels, "pixel_mask": np.ones((1, *pixels.shape[2:]), bool)})
        return batches

    def description(self) -> dict:
        """What the metadata and export.json record about the calibration."""
        return {
            "source": self.source,
            "split": self.split,
            "images": len(self.images),
            "skipped": len(self.skipped),
        }


def calibration_files(source: str | Path, count: int) -> tuple[list[Path], str | None]:
    """`count` image files spread evenly over the sorted images of `source`, and the split they come from.

    `source` is a dataset folder (any layout egtr.data reads: its train split, else val, else test) or a
    folder of images (searched recursively). ValueError when it holds no image.
    """
    from egtr.data.layouts import detect_layout, load_dataset
    from egtr.data.problems import NotADatasetError
    from egtr.inference.image_files import find_images

    source = Path(source)
    if not source.exists():
        raise ValueError(f"--calibration {source}: no such file or directory")
    split = None
    try:
        layout = detect_layout(source)
    except NotADatasetError:
        paths = [found.path for found in find_images([source]).files]
    else:
        available = layout.available_splits(source)
        split = next(name for name in SPLIT_ORDER if name in available)
        paths = sorted({Path(record.image_path) for record in load_dataset(source, split).records})
    if not paths:
        raise ValueError(f"--calibration {source}: no image files found")
    chosen = min(count, len(paths))
    return [paths[index * len(paths) // chosen] for index in range(chosen)], split


def calibration_set(
    source: str | Path, count: int, size: int, max_size: int | None, reading=None
) -> CalibrationSet:
    """The calibration images of `source` (see `calibration_files`), read by the one image reader
    (`reading`: egtr.data.images.ImageReading, default as the official loader) and preprocessed as for
    prediction at `size` / `max_size`. An unreadable file is skipped and named in `skipped`; ValueError
    when none is readable."""
    import torch

    from egtr.data.images import ImageReadError, ImageReading
    from egtr.data.transforms import eval_transform

    files, split = calibration_files(source, count)
    reading = reading or ImageReading()
    transform = eval_transform(size, max_size)
    images, skipped = [], []
    for path in files:
        try:
            rgb = reading.read(path, str(path))
        except ImageReadError as error:
            skipped.append(f"{path}: {error.reason}")
            continue
        pixel_values, _ = transform(rgb, {"boxes": torch.zeros((0, 4))})
        images.append(CalibrationImage(str(path), pixel_values, (rgb.height, rgb.width)))
    if not images:
        raise ValueError(f"--calibration {source}: none of its {len(files)} chosen images could be read")
    return CalibrationSet(str(source), split, images, skipped)


def module_path(node_name: str) -> tuple[str, ...]:
    """The module path of an exported node: "/model/detector/bbox_embed/layers.0/MatMul" ->
    ("detector", "bbox_embed", "layers", "0") (the wrapper's "model" and the operator name dropped)."""
    parts = [part for part in node_name.split("/") if part]
    if len(parts) < 2 or parts[0] != "model":
        return ()
    return tuple(piece for part in parts[1:-1] for piece in part.split("."))


def kept_nodes(node_names: Iterable[str], keep: Sequence[str]) -> list[str]:
    """The nodes of `node_names` that belong to a module named in `keep` (module docstring)."""
    wanted = [tuple(name.split(".")) for name in keep]
    kept = []
    for node in node_names:
        path = module_path(node)
        if any(path[start : start + len(parts)] == parts for parts in wanted for start in range(len(path))):
            kept.append(node)
    return kept


def quantization_record(tool: str, settings: Int8Settings, calibration: CalibrationSet, **details) -> dict:
    """The `egtr.quantization` metadata of an INT8 export: dtype, tool and version, what was asked, the
    calibration, and the tool's own settings (`details`)."""
    return {
        "dtype": "int8",
        "tool": tool,
        "keep_fp32": list(settings.keep_fp32),
        "calibration": calibration.description(),
        **details,
    }
