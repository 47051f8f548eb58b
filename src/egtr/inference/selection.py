"""Which of the model's pairs become a scene graph's triplets and objects: `TripletOptions`.

Its fields carry their help, bounds and choices as metadata (`option`), from which `egtr predict` makes its
flags and `egtr serve` its query parameters; torch-free, so that parsing the command line needs no torch.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

OBJECT_SCORES = ("softmax", "sigmoid")  # object confidence: softmax (official) or sigmoid of the logits


def option(help: str, *, default_text: str | None = None, negation: str | None = None, **spec: Any) -> dict:
    """Field metadata of a selection option: `help` (what the value means), the command line's `default_text`
    (default: the value itself), `negation` (for a True-by-default switch: the help of its --no- flag), and
    `spec`: `metavar`, bounds `ge` with `le` or `lt`, `choices`."""
    return {"help": help, "default_text": default_text, "negation": negation, **spec}


@dataclass(frozen=True)
class TripletOptions:
    """Which of the model's pairs become a scene graph's triplets and objects (official defaults).

    Every field is also a flag of `egtr predict` and a query parameter of `egtr serve`, both made from the
    field and its metadata (`option`): names, defaults, help and bounds are declared only here.
    """

    top_k: int = field(default=100, metadata=option("triplets kept per image", metavar="K", ge=1))
    threshold: float = field(
        default=0.0, metadata=option("minimum triplet score", metavar="SCORE", ge=0.0, le=1.0)
    )
    graph_constraint: bool = field(
        default=True,
        metadata=option(
            "one predicate per object pair",
            negation="allow several predicates per object pair",
            default_text="off, one predicate per pair",
        ),
    )
    dedup_iou: float | None = field(
        default=None,
        metadata=option(
            "merge objects of the same class whose boxes overlap above IOU into the best-scoring one",
            default_text="off, as officially",
            metavar="IOU",
            ge=0.0,
            lt=1.0,
        ),
    )
    object_threshold: float | None = field(
        default=None,
        metadata=option(
            "also list objects in no kept triplet that score at least SCORE", metavar="SCORE", ge=0.0, le=1.0
        ),
    )
    object_score: str = field(
        default="softmax",
        metadata=option(
            "object confidence: softmax (official) or sigmoid over the class logits", choices=OBJECT_SCORES
        ),
    )

    def __post_init__(self) -> None:
        for spec in fields(self):
            check_option(spec.name, getattr(self, spec.name), spec.metadata)

    def pairs_needed(self, num_queries: int) -> int:
        """How many best pairs the post-processing must keep: all of them when de-duplicating."""
        return num_queries * num_queries if self.dedup_iou is not None else self.top_k


def check_option(name: str, value: Any, metadata: Mapping[str, Any]) -> None:
    """ValueError naming `name` when `value` is outside the bounds (`ge`, and `le` or `lt`) or the choices of
    its metadata (`option`); None (an option that is off) is always allowed."""
    if "choices" in metadata and value not in metadata["choices"]:
        raise ValueError(f"{name} must be one of {', '.join(metadata['choices'])}, got {value!r}")
    if value is None or "ge" not in metadata:
        return
    low, high = metadata["ge"], metadata.get("le", metadata.get("lt"))
    inside = (
        value >= low and ("le" not in metadata or value <= high) and ("lt" not in metadata or value < high)
    )
    if not inside and high is None:
        raise ValueError(f"{name} must be >= {low:g}, got {value}")
    if not inside:
        closing = "]" if "le" in metadata else ")"
        raise ValueError(f"{name} must be in [{low:g}, {high:g}{closing}, got {value}")
