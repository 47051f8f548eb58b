"""What an exported model carries besides its graph, as string key/value pairs.

The same keys are stored as ONNX `metadata_props` and as OpenVINO `rt_info` (under `egtr`), so either file
alone holds everything needed to run it: the EGTRConfig (JSON), class and predicate names, the
preprocessing (resize rule, normalization, padding), the predicate prior `rel_dist` (for post-hoc logit
adjustment, which is applied in Python and never baked into the graph), the egtr version, the ONNX
opset, the precision the export runs in by default (`egtr.precision`: fp32, or bf16 for an export made
with `egtr export --precision bf16`) and, for an INT8 export, how it was quantized (`egtr.quantization`:
tool, settings, the modules kept in floating point, the calibration images; null otherwise). The last two
keys are optional when reading (exports of egtr before them are fp32). Reading it parses JSON only;
nothing is executed. `ExportMetadata.from_strings` validates every field and names the file and the field
in its errors.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from egtr.config import EGTRConfig
from egtr.data.transforms import IMAGENET_MEAN, IMAGENET_STD

FORMAT = "egtr-export"
FORMAT_VERSION = 1
INPUT_NAMES = ("pixel_values", "pixel_mask")
OUTPUT_NAMES = ("logits", "pred_boxes", "rel_logits", "connectivity_logits")
PADDING = "zeros at the bottom and right after normalization; pixel_mask True on real pixels"
RESIZE = "bilinear; shorter side to size, longer side at most max_size (DETR arithmetic)"
KEYS = (
    "egtr.format",
    "egtr.format_version",
    "egtr.version",
    "egtr.opset",
    "egtr.config",
    "egtr.class_names",
    "egtr.predicate_names",
    "egtr.preprocessing",
    "egtr.rel_dist",
    "egtr.outputs",
    "egtr.precision",
    "egtr.quantization",
)
OPTIONAL_KEYS = {"egtr.precision": "fp32", "egtr.quantization": "null"}  # value when absent
EXPORT_PRECISIONS = ("fp32", "bf16", "fp16")


class ExportMetadataError(ValueError):
    """An exported model's metadata is missing, malformed or inconsistent (names the file and field)."""


def output_names(config: EGTRConfig) -> tuple[str, ...]:
    """The graph outputs of a model with this config (no connectivity output when the head is off)."""
    return OUTPUT_NAMES if config.use_connectivity else OUTPUT_NAMES[:3]


@dataclass
class ExportMetadata:
    config: EGTRConfig
    class_names: list[str]  # [C]
    predicate_names: list[str]  # [R]
    size: int  # shorter side of the resized image
    max_size: int | None  # longest-side cap
    rel_dist: list[float] | None  # [R] predicate prior, None for a model without frequency statistics
    opset: int
    egtr_version: str
    precision: str = "fp32"  # what the backend computes the float parts in unless --precision says else
    quantization: dict[str, Any] | None = None  # INT8: how (egtr.export.int8); None: a float export

    @property
    def label(self) -> str:
        """ "int8" for a quantized export, else its precision (what reports call it)."""
        return "int8" if self.quantization else self.precision

    def rel_dist_tensor(self) -> Tensor | None:
        return None if self.rel_dist is None else torch.tensor(self.rel_dist, dtype=torch.float32)

    def preprocessing(self) -> dict[str, Any]:
        return {
            "size": self.size,
            "max_size": self.max_size,
            "resize": RESIZE,
            "mean": list(IMAGENET_MEAN),
            "std": list(IMAGENET_STD),
            "scale": "RGB / 255",
            "padding": PADDING,
        }

    def to_strings(self) -> dict[str, str]:
        """Every field as a string value, keyed by KEYS."""
        return {
            "egtr.format": FORMAT,
            "egtr.format_version": str(FORMAT_VERSION),
            "egtr.version": self.egtr_version,
            "egtr.opset": str(self.opset),
            "egtr.config": self.config.to_json(),
            "egtr.class_names": json.dumps(self.class_names),
            "egtr.predicate_names": json.dumps(self.predicate_names),
            "egtr.preprocessing": json.dumps(self.preprocessing()),
            "egtr.rel_dist": json.dumps(self.rel_dist),
            "egtr.outputs": json.dumps(list(output_names(self.config))),
            "egtr.precision": self.precision,
            "egtr.quantization": json.dumps(self.quantization),
        }

    @classmethod
    def from_strings(cls, values: dict[str, str], source: str) -> ExportMetadata:
        """Parse and check metadata read from `source` (a file name, for the error messages)."""
        return _Reader(values, source).metadata()


class _Reader:
    def __init__(self, values: dict[str, str], source: str) -> None:
        self.values, self.source = values, source

    def fail(self, key: str, problem: str) -> ExportMetadataError:
        return ExportMetadataError(f"{self.source}: metadata field {key}: {problem}")

    def text(self, key: str) -> str:
        if key not in self.values and key in OPTIONAL_KEYS:
            return OPTIONAL_KEYS[key]
        if key not in self.values:
            raise self.fail(key, "missing (not a model written by `egtr export`, or a damaged one)")
        return self.values[key]

    def json(self, key: str) -> Any:
        try:
            return json.loads(self.text(key))
        except json.JSONDecodeError as error:
            raise self.fail(key, f"not valid JSON ({error})") from error

    def integer(self, key: str) -> int:
        text = self.text(key)
        if not text.isdigit():
            raise self.fail(key, f"expected a whole number, got {text!r}")
        return int(text)

    def names(self, key: str, count: int) -> list[str]:
        names = self.json(key)
        if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
            raise self.fail(key, "expected a list of names")
        if len(names) != count:
            raise self.fail(key, f"{len(names)} names for a model with {count}")
        return names

    def metadata(self) -> ExportMetadata:
        if self.text("egtr.format") != FORMAT:
            raise self.fail("egtr.format", f"expected {FORMAT!r}, got {self.values['egtr.format']!r}")
        version = self.integer("egtr.format_version")
        if version != FORMAT_VERSION:
            raise self.fail(
                "egtr.format_version",
                f"version {version}; this egtr reads version {FORMAT_VERSION} (re-export the model)",
            )
        values = self.json("egtr.config")
        if not isinstance(values, dict):
            raise self.fail("egtr.config", "expected a JSON object")
        try:
            config = EGTRConfig.from_dict(values)
        except (ValueError, TypeError) as error:
            raise self.fail("egtr.config", str(error)) from error
        outputs = self.json("egtr.outputs")
        if outputs != list(output_names(config)):
            raise self.fail("egtr.outputs", f"{outputs} does not fit the config {list(output_names(config))}")
        preprocessing = self.json("egtr.preprocessing")
        size, max_size = self.preprocessing(preprocessing)
        return ExportMetadata(
            config=config,
            class_names=self.names("egtr.class_names", config.num_labels),
            predicate_names=self.names("egtr.predicate_names", config.num_rel_labels),
            size=size,
            max_size=max_size,
            rel_dist=self.rel_dist(config),
            opset=self.integer("egtr.opset"),
            egtr_version=self.text("egtr.version"),
            precision=self.precision(),
            quantization=self.quantization(),
        )

    def precision(self) -> str:
        value = self.text("egtr.precision")
        if value not in EXPORT_PRECISIONS:
            expected = ", ".join(EXPORT_PRECISIONS)
            raise self.fail("egtr.precision", f"expected one of {expected}, got {value!r}")
        return value

    def quantization(self) -> dict[str, Any] | None:
        value = self.json("egtr.quantization")
        if value is not None and not (isinstance(value, dict) and value.get("dtype") == "int8"):
            raise self.fail("egtr.quantization", 'expected null or an object with "dtype": "int8"')
        return value

    def preprocessing(self, value: Any) -> tuple[int, int | None]:
        key = "egtr.preprocessing"
        if not isinstance(value, dict):
            raise self.fail(key, "expected a JSON object")
        for field, expected in (("mean", IMAGENET_MEAN), ("std", IMAGENET_STD)):
            if value.get(field) != list(expected):
                raise self.fail(
                    key, f"{field} is {value.get(field)}, but egtr normalizes with {list(expected)}"
                )
        size, max_size = value.get("size"), value.get("max_size")
        if not isinstance(size, int) or size < 1:
            raise self.fail(key, f"size must be a positive whole number, got {size!r}")
        if max_size is not None and (not isinstance(max_size, int) or max_size < size):
            raise self.fail(key, f"max_size must be null or a whole number >= size, got {max_size!r}")
        return size, max_size

    def rel_dist(self, config: EGTRConfig) -> list[float] | None:
        key = "egtr.rel_dist"
        value = self.json(key)
        if value is None:
            return None
        if (
            not isinstance(value, list)
            or len(value) != config.num_rel_labels
            or not all(isinstance(x, (int, float)) and math.isfinite(x) and x >= 0 for x in value)
        ):
            raise self.fail(key, f"expected null or {config.num_rel_labels} non-negative numbers")
        return [float(x) for x in value]
