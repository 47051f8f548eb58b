"""A model's post-processed predictions on every image of a dataset split (`egtr evaluate --checkpoint`)."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import DataLoader

from egtr.data.collate import collate
from egtr.data.dataset import SceneGraphDataset
from egtr.data.images import ImageReading
from egtr.data.record import SceneGraphRecord
from egtr.data.transforms import eval_transform
from egtr.inference.postprocess import PostprocessOptions, postprocess
from egtr.models.egtr import EGTR
from egtr.precision import autocast


def predict_records(
    model: EGTR,
    records: list[SceneGraphRecord],
    options: PostprocessOptions,
    size: int = 800,
    max_size: int = 1333,
    batch_size: int = 1,
    device: str | torch.device = "cpu",
    num_workers: int = 2,
    reading: ImageReading | None = None,
    precision: str = "fp32",
) -> Iterator[tuple[str, dict]]:
    """Yield (image_id, prediction dict of numpy arrays) per readable image, in order; unreadable images
    are skipped with a warning (the evaluation then counts them, `count_unreadable`). `reading`: how
    pixels are read (default: as the official loader). The model runs under
    `egtr.precision.autocast(device, precision)`, post-processing in fp32."""
    loader = DataLoader(
        SceneGraphDataset(records, eval_transform(size, max_size), reading=reading),
        batch_size=batch_size,
        num_workers=num_workers,
        collate_fn=collate,
    )
    model = model.to(device).eval()
    for batch in loader:
        if not batch["targets"]:
            continue
        with torch.inference_mode():
            with autocast(device, precision):
                outputs = model(batch["pixel_values"].to(device), batch["pixel_mask"].to(device))
            sizes = torch.stack([target["orig_size"] for target in batch["targets"]])
            predictions = postprocess(outputs, sizes, options)
        for target, prediction in zip(batch["targets"], predictions):
            yield target["image_id"], to_numpy(prediction)


def to_numpy(prediction: dict) -> dict:
    """A prediction dict (possibly nested) with every tensor as a numpy array."""
    return {k: to_numpy(v) if isinstance(v, dict) else v.cpu().numpy() for k, v in prediction.items()}
