"""Scene graph evaluation with the standard protocols (architecture.md §4, §5.8; their sources: §10).

- `SceneGraphEvaluator`: Visual Genome SGDet R@K, mR@K, ngR@K, ngmR@K, zR@K, F1@K (neural-motifs rules).
- `OpenImagesEvaluator`: Open Images micro R@50, per-predicate AP, wmAP_rel, wmAP_phr, score_wtd (PySGG).
- `DetectionEvaluator`: COCO box AP / AP50 through pycocotools.
- `evaluate_split`: a whole dataset split from saved or fresh predictions; `write_report`: metrics.json/.md.
- `write_predictions` / `read_predictions`: the safe predictions file.
"""

from egtr.evaluation.detection import DetectionEvaluator
from egtr.evaluation.inputs import EvaluationInputError
from egtr.evaluation.open_images import OpenImagesEvaluator
from egtr.evaluation.predictions_file import (
    PredictionsFile,
    PredictionsFileError,
    read_predictions,
    write_predictions,
)
from egtr.evaluation.recall import SceneGraphEvaluator
from egtr.evaluation.report import write_report
from egtr.evaluation.split import PROTOCOLS, SplitEvaluation, evaluate_split
from egtr.evaluation.zero_shot import training_triplets

__all__ = [
    "PROTOCOLS",
    "DetectionEvaluator",
    "EvaluationInputError",
    "OpenImagesEvaluator",
    "PredictionsFile",
    "PredictionsFileError",
    "SceneGraphEvaluator",
    "SplitEvaluation",
    "evaluate_split",
    "read_predictions",
    "training_triplets",
    "write_predictions",
    "write_report",
]
