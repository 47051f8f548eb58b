"""The synthetic scene-graph world: coloured shapes with geometric predicates, generated from a seed."""

from egtr.data.synthetic.export import split_sizes, write_synthetic_dataset
from egtr.data.synthetic.geometry import PREDICATES, SceneRules
from egtr.data.synthetic.shapes import DEFAULT_COLOURS, PALETTE, SHAPES
from egtr.data.synthetic.world import SyntheticWorld

__all__ = [
    "DEFAULT_COLOURS",
    "PALETTE",
    "PREDICATES",
    "SHAPES",
    "SceneRules",
    "SyntheticWorld",
    "split_sizes",
    "write_synthetic_dataset",
]
