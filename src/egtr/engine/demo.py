"""The demo's training and report (`egtr demo`): EGTR trained from scratch on the synthetic world.

One phase: the `egtr` phase of the `synthetic` preset family (engine/settings.py) with `DEMO_TRAINING` on top,
from scratch, so the detector and the relation head learn together. `DEMO_TRAINING` is what measured best for
a few minutes of CPU (BENCHMARKS.md, "The demo"): a ResNet-18 trunk of half width, one encoder and two decoder
layers (3 + 3 cost 1.4x more per step for no better model; one decoder layer or two feature levels lost 18-28
points of R@50), three groups of query denoising whose labels are replaced at random half of the time (0.2,
DN-DETR's value, left a tenth of the objects with the wrong shape; 0.5 raised AP50 by 1.8-2.5 points on
world seeds 1 and 2 and kept it on seed 0, for the same cost per step), auxiliary decoder losses, no
dropout, rates of 6e-4 (1.5e-3 for the relation head) divided by 10 for the last fifth of the budget (the
"step" schedule: 2 points of AP50 over constant rates on world seeds 0-2; a cosine decay over so short a
budget lost 0.3-0.5 R@50), and AdamW's fused kernel (the same update up to rounding, 7% less per step). The
budget is a number of steps (the default: reproducible on one machine) or a time; validation (with R@K, mR@K
and AP50) runs `VALIDATIONS` times over a step budget, which gives the learning curve.

Import-light: torch and Lightning are imported by the functions that need them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from egtr.engine.settings import TrainSettings, merge, preset

DEMO_STEPS = 1500
DEMO_TRAINING: dict[str, Any] = {
    "lr": 6e-4,
    "lr_backbone": 6e-4,
    "lr_initialized": 1.5e-3,
    "lr_schedule": "step",
    "adamw_implementation": "fused",
    "model": {
        "backbone_width": 32,
        "encoder_layers": 1,
        "decoder_layers": 2,
        "denoising_groups": 3,
        "denoising_label_noise": 0.5,
        "auxiliary_loss": True,
        "dropout": 0.0,
    },
}
DEMO_BATCH_SIZE = 4
VALIDATIONS = 5  # over a step budget, the last one at the last step; a time budget keeps their spacing
DRAWN_IMAGES = 6
# the drawn scene graphs merge boxes of one class that overlap this much (a DETR-style model's near-duplicate
# queries, e.g. two boxes on one circle, would otherwise fill the best triplets with copies); the metrics
# follow the official protocol, without merging
DRAWN_DEDUP_IOU = 0.7


def image_size_settings(image_size: int) -> dict[str, Any]:
    """Training scales (x0.9, 1, 1.1) and evaluation size for square images of `image_size` pixels."""
    return {
        "eval_size": image_size,
        "eval_max_size": 2 * image_size,
        "train_scales": [round(image_size * f) for f in (0.9, 1.0, 1.1)],
        "train_max_size": 2 * image_size,
    }


def demo_settings(
    data: Path,
    out: Path,
    *,
    image_size: int,
    seed: int,
    steps: int,
    minutes: float | None,
    batch_size: int,
    accelerator: str,
    workers: int,
) -> TrainSettings:
    """The demo run's settings: `steps` optimizer steps, or `minutes` of training when given."""
    if minutes:
        budget = {"max_minutes": minutes, "max_steps": -1, "val_check_interval": DEMO_STEPS // VALIDATIONS}
    else:
        budget = {"max_steps": steps, "val_check_interval": max(1, steps // VALIDATIONS)}
    return merge(
        preset("synthetic", "egtr"),
        {
            **DEMO_TRAINING,
            **image_size_settings(image_size),
            **budget,
            "data": str(data),
            "out": str(out),
            "seed": seed,
            "accelerator": accelerator,
            "batch_size": batch_size,
            "num_workers": workers,
        },
    )


def write_demo_report(result: Any, data: Path, model_path: Path, report: Path, device: str) -> Path:
    """The report folder of a finished demo run (`result`: its engine PhaseResult): test metrics,
    loss curves, the learning curve (PNG and JSON) and the first test images' scene graphs, predicted
    and drawn beside their ground truth (egtr.inference.review)."""
    import json
    import shutil

    from egtr.data import load_dataset
    from egtr.engine.curves import learning_curve, plot_learning_curve
    from egtr.files import write_text
    from egtr.inference.predictor import SceneGraphPredictor
    from egtr.inference.review import draw_review

    report.mkdir(parents=True, exist_ok=True)
    for name in ("metrics.json", "metrics.md", "loss_curves.png"):
        if (result.out / "report" / name).is_file():
            shutil.copy(result.out / "report" / name, report / name)
    points = learning_curve(result.out / "logs")
    write_text(report / "learning_curve.json", json.dumps(points, indent=1) + "\n")
    plot_learning_curve(points, report / "learning_curve.png", "egtr demo: validation split")

    test = load_dataset(data, "test")
    records = test.records[:DRAWN_IMAGES]
    size = max(records[0].width, records[0].height)
    predictor = SceneGraphPredictor.from_checkpoint(
        model_path,
        device=None if device == "auto" else device,
        size=size,
        max_size=2 * size,
        top_k=20,
        dedup_iou=DRAWN_DEDUP_IOU,
    )
    predictions = report / "predictions"
    for record, predicted in zip(records, predictor.iter_predict([r.image_path for r in records])):
        if predicted.graph is None:
            continue
        stem = Path(predicted.source).stem
        write_text(predictions / f"{stem}.json", predicted.graph.to_json())
        draw_review(
            predicted.image,
            predicted.graph,
            record,
            test.class_names,
            test.predicate_names,
            predictions / f"{stem}.png",
        )
    return report
