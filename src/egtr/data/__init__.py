"""Datasets: readers of the SGG layouts, a writer of the custom (COCO/RelTR) layout, the synthetic world,
transforms, batching and statistics.

`load_dataset(root, split)` reads any supported layout into a `SceneGraphSplit` of `SceneGraphRecord`s;
`write_coco_dataset` writes records as a custom dataset. Torch pieces live in `egtr.data.dataset`,
`egtr.data.collate` and `egtr.data.transforms`; the synthetic world in `egtr.data.synthetic`.
"""

from egtr.data.coco_writer import write_coco_dataset
from egtr.data.layouts import LAYOUTS, detect_layout, load_dataset, read_split
from egtr.data.problems import DatasetError, NotADatasetError, Problem, ProblemLog
from egtr.data.record import SceneGraphRecord, SceneGraphSplit

__all__ = [
    "LAYOUTS",
    "DatasetError",
    "NotADatasetError",
    "Problem",
    "ProblemLog",
    "SceneGraphRecord",
    "SceneGraphSplit",
    "detect_layout",
    "load_dataset",
    "read_split",
    "write_coco_dataset",
]
