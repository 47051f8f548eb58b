"""Loss curves and learning curves (PNG) from the CSV logs that Lightning's CSVLogger writes (one file per
run of a phase)."""

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


LEARNING_CURVE = ("val/R@50", "val/mR@50", "val/AP50")


def phase_columns(log_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """`read_columns` of every log of a phase, in run order."""
    columns: dict[str, list[tuple[int, float]]] = {}
    for path in log_files(log_dir):
        for name, points in read_columns(path).items():
            columns.setdefault(name, []).extend(points)
    return columns


def learning_curve(log_dir: Path) -> list[dict[str, float]]:
    """Every validation with metrics: {"steps" (optimizer steps done), "minutes" (training wall time so
    far), "R@50", "mR@50", "AP50"}, in order."""
    columns = phase_columns(log_dir)
    values = {name: dict(columns.get(name, [])) for name in (*LEARNING_CURVE, "val/minutes")}
    return [  # the logger's step of a validation after k optimizer steps is k - 1
        {
            "steps": step + 1,
            "minutes": minutes,
            **{name[4:]: values[name].get(step) for name in LEARNING_CURVE},
        }
        for step, minutes in sorted(values["val/minutes"].items())
    ]


def plot_learning_curve(points: list[dict[str, float]], out_png: Path, title: str = "") -> Path | None:
    """Validation R@50, mR@50 and AP50 against training minutes (`learning_curve` points); None without
    points."""
    if not points:
        return None
    figure = new_figure(5.5, 3.6, dpi=110)
    axis = figure.subplots()
    minutes = [point["minutes"] for point in points]
    for name in (name[4:] for name in LEARNING_CURVE):
        pairs = [(m, point[name]) for m, point in zip(minutes, points) if point.get(name) is not None]
        if pairs:
            axis.plot(*zip(*pairs), label=f"validation {name}", marker="o", markersize=3)
    axis.set_xlabel("training wall time (minutes, validations included)")
    axis.set_ylim(0, 1)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8, loc="lower right")
    if title:
        axis.set_title(title, fontsize=9)
    figure.tight_layout()
    return save_figure(figure, out_png)


def plot_loss_curves(log_dir: Path, out_png: Path) -> Path | None:
    """Plot the losses and validation metrics over steps; None when there is nothing to plot."""
    columns = phase_columns(log_dir)
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
