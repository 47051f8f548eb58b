"""SceneGraph: one image's predicted objects and subject-predicate-object triplets (architecture.md §4).

Objects are listed in a readable order: first the objects of the kept triplets, in the order they first
appear (the top triplet's subject is object 0, its object usually object 1), then, when the predictor
was asked for them, the remaining detections above the object-score threshold, best first. Triplet
indices refer to this list; `queries` says which decoder query each object came from.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np


class Triplet(NamedTuple):
    subject: int  # index into the scene graph's objects
    predicate: int  # predicate class index (0-based)
    object: int  # index into the scene graph's objects
    score: float  # s_subject * s_object * rel[predicate]


@dataclass(eq=False)
class SceneGraph:
    """Objects (K) and triplets (T, best first) of one image; boxes in original (EXIF-upright) pixels."""

    source: str  # file path, or "<image i>" / "<array i>" for in-memory inputs
    width: int  # of the (EXIF-upright) original image
    height: int
    boxes: np.ndarray  # float32 [K,4] (x0, y0, x1, y1)
    labels: np.ndarray  # int64 [K] class indices
    label_names: list[str]  # [K]
    scores: np.ndarray  # float32 [K] object confidence
    queries: np.ndarray  # int64 [K] decoder query of each object
    triplets: list[Triplet]  # [T] sorted by score, best first
    predicate_names: list[str]  # [T] name of each triplet's predicate
    explanation: dict[str, Any] | None = field(default=None)  # see egtr.inference.explain

    def __post_init__(self) -> None:
        count = len(self.labels)
        for name in ("boxes", "label_names", "scores", "queries"):
            if len(getattr(self, name)) != count:
                raise ValueError(
                    f"{self.source}: {name} has {len(getattr(self, name))} entries, labels {count}"
                )
        if len(self.predicate_names) != len(self.triplets):
            raise ValueError(
                f"{self.source}: {len(self.triplets)} triplets but {len(self.predicate_names)} names"
            )

    def __len__(self) -> int:
        return len(self.triplets)

    def describe(self, rank: int) -> str:
        """'subject predicate object' of the triplet at 0-based position `rank`, with object indices."""
        triplet = self.triplets[rank]
        return (
            f"{triplet.subject}:{self.label_names[triplet.subject]} {self.predicate_names[rank]} "
            f"{triplet.object}:{self.label_names[triplet.object]}"
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: image, width, height, objects [{id, label, name, score, box, query}], triplets
        [{subject, predicate, object, score, subject_name, predicate_name, object_name}], explain (if any)."""
        objects = [
            {
                "id": index,
                "label": int(self.labels[index]),
                "name": self.label_names[index],
                "score": float(self.scores[index]),
                "box": [float(value) for value in self.boxes[index]],
                "query": int(self.queries[index]),
            }
            for index in range(len(self.labels))
        ]
        triplets = [
            {
                "subject": triplet.subject,
                "predicate": triplet.predicate,
                "object": triplet.object,
                "score": triplet.score,
                "subject_name": self.label_names[triplet.subject],
                "predicate_name": name,
                "object_name": self.label_names[triplet.object],
            }
            for triplet, name in zip(self.triplets, self.predicate_names)
        ]
        result = {
            "image": self.source,
            "width": self.width,
            "height": self.height,
            "objects": objects,
            "triplets": triplets,
        }
        if self.explanation is not None:
            result["explain"] = self.explanation
        return result

    def to_json(self) -> str:
        """`to_dict()` as JSON text with one object or triplet per line."""
        data = self.to_dict()
        lines = ["{"]
        for position, (key, value) in enumerate(data.items()):
            comma = "," if position < len(data) - 1 else ""
            if key in ("objects", "triplets") and value:
                rows = ",\n".join(f"  {json.dumps(row)}" for row in value)
                lines.append(f' "{key}": [\n{rows}\n ]{comma}')
            else:
                lines.append(f" {json.dumps(key)}: {json.dumps(value)}{comma}")
        return "\n".join([*lines, "}"]) + "\n"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SceneGraph:
        """Inverse of `to_dict` (e.g. to draw a graph read back from a JSON file)."""
        objects, triplets = data["objects"], data["triplets"]
        return cls(
            source=data["image"],
            width=int(data["width"]),
            height=int(data["height"]),
            boxes=np.array([o["box"] for o in objects], dtype=np.float32).reshape(-1, 4),
            labels=np.array([o["label"] for o in objects], dtype=np.int64),
            label_names=[o["name"] for o in objects],
            scores=np.array([o["score"] for o in objects], dtype=np.float32),
            queries=np.array([o["query"] for o in objects], dtype=np.int64),
            triplets=[
                Triplet(t["subject"], t["predicate"], t["object"], float(t["score"])) for t in triplets
            ],
            predicate_names=[t["predicate_name"] for t in triplets],
            explanation=data.get("explain"),
        )
