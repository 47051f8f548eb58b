"""Loss curves (PNG) from the CSV log that Lightning's CSVLogger writes."""

from __future__ import annotations

import csv
from pathlib import Path

from egtr.inference.output import new_figure, save_figure

CURVES = (
    ("train/loss", "validation_loss"),
    ("train/loss_ce", "train/loss_bbox", "train/loss_giou"),
    ("train/loss_rel", "train/loss_connectivity"),
    ("val/R@50", "val/mR@50", "val/AP50"),
)


def read_columns(path: Path) -> dict[str, list[tuple[int, float]]]:
    """{column: [(step, value), ...]} of every non-empty numeric cell of a CSVLogger metrics file."""
    columns: dict[str, list[tuple[int, float]]] = {}
    with path.open(newline="") as handle:
        for row in csv.DictReader(handle):
            step = int(float(row.get("step") or 0))
            for key, value in row.items():
                if key in ("step", "epoch") or value in (None, ""):
                    continue
                columns.setdefault(key, []).append((step, float(value)))
    return columns


def plot_loss_curves(metrics_csv: Path, out_png: Path) -> Path | None:
    """Plot the losses and validation metrics over steps; None when there is nothing to plot."""
    if not metrics_csv.is_file():
        return None
    columns = read_columns(metrics_csv)
    panels = [[name for name in group if name in columns] for group in CURVES]
    panels = [panel for panel in panels if panel]
    if not panels:
        return None
    figure = new_figure(4.5 * len(panels), 3.4, dpi=110)
    axes = figure.subplots(1, len(panels), squeeze=False)
    for axis, names in zip(axes[0], panels):
        for name in names:
            steps, values = zip(*columns[name])
            axis.plot(steps, values, label=name, marker="o" if len(steps) < 30 else None, markersize=3)
        axis.set_xlabel("step")
        axis.legend(fontsize=8)
        axis.grid(alpha=0.3)
    figure.tight_layout()
    return save_figure(figure, out_png)
