"""Loss curves (PNG) from the CSV logs that Lightning's CSVLogger writes (one file per run of a phase)."""

from __future__ import annotations

import csv
from pathlib import Path

from egtr.figures import new_figure, save_figure

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


def log_files(log_dir: Path) -> list[Path]:
    """The CSV logs of a phase in run order: earlier runs' `metrics-<k>.csv`, then `metrics.csv`."""
    earlier = sorted(log_dir.glob("metrics-*.csv"), key=lambda p: int(p.stem.split("-")[1]))
    return [*earlier, *([log_dir / "metrics.csv"] if (log_dir / "metrics.csv").is_file() else [])]


def keep_previous_log(log_dir: Path) -> None:
    """Before a resumed run: move `metrics.csv` aside (the CSV logger would overwrite it)."""
    current = log_dir / "metrics.csv"
    if current.is_file():
        current.rename(log_dir / f"metrics-{len(log_files(log_dir))}.csv")


def plot_loss_curves(log_dir: Path, out_png: Path) -> Path | None:
    """Plot the losses and validation metrics over steps; None when there is nothing to plot."""
    columns: dict[str, list[tuple[int, float]]] = {}
    for path in log_files(log_dir):
        for name, points in read_columns(path).items():
            columns.setdefault(name, []).extend(points)
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
        if all(name.endswith("loss") or "/loss" in name for name in names):
            axis.set_yscale("log")  # the first steps' losses would flatten the rest
        axis.legend(fontsize=8)
        axis.grid(alpha=0.3)
    figure.tight_layout()
    return save_figure(figure, out_png)
