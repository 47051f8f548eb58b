"""The figure of a study: metrics against a numeric setting (log axis optional) or bars per variant."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from egtr.figures import new_figure, save_figure
from egtr.studies.study import Study


def _stats(row: dict, metric: str) -> tuple[float, float]:
    """(mean, std) in percent; NaN when undefined, std 0 with one seed."""
    stats = row["summary"].get(metric, {})
    mean, std = stats.get("mean"), stats.get("std")
    return (np.nan if mean is None else 100 * mean), (0.0 if std is None else 100 * std)


def plot_study(study: Study, rows: list[dict], path: Path) -> Path:
    """Write the study's PNG: a curve per plot metric over `plot.x`, or grouped bars per variant.

    Error bars are the standard deviation over seeds. On a log axis, variants with x = 0 (e.g. smoothing
    off) cannot be placed: they are drawn as dashed horizontal lines in their metric's colour.
    """
    plot = study.plot
    figure = new_figure(8, 4.5)
    axis = figure.subplots()
    colours = [f"C{index}" for index in range(len(plot.metrics))]
    if plot.x is not None:
        on_axis = [row for row in rows if not (plot.log and float(row["model"][plot.x]) <= 0)]
        on_axis.sort(key=lambda row: float(row["model"][plot.x]))
        off_axis = [row for row in rows if row not in on_axis]
        xs = [float(row["model"][plot.x]) for row in on_axis]
        for metric, colour in zip(plot.metrics, colours):
            means, stds = zip(*(_stats(row, metric) for row in on_axis)) if on_axis else ((), ())
            axis.errorbar(xs, means, yerr=stds, marker="o", capsize=3, color=colour, label=metric)
            for row in off_axis:
                mean, _ = _stats(row, metric)
                axis.axhline(
                    mean, color=colour, linestyle="--", linewidth=1, label=f"{metric}, {row['name']}"
                )
        if plot.log:
            axis.set_xscale("log")
        axis.set_xlabel(plot.label)
    else:
        positions = np.arange(len(rows))
        width = 0.8 / max(1, len(plot.metrics))
        for index, (metric, colour) in enumerate(zip(plot.metrics, colours)):
            means, stds = zip(*(_stats(row, metric) for row in rows))
            offset = (index - (len(plot.metrics) - 1) / 2) * width
            axis.bar(positions + offset, means, width, yerr=stds, capsize=3, color=colour, label=metric)
        axis.set_xticks(positions, [row["name"] for row in rows], rotation=20, ha="right", fontsize=8)
    seeds = max((len(row["runs"]) for row in rows), default=0)
    axis.set_ylabel("test metric (%)")
    axis.set_title(f"{study.title} (mean ± std over {seeds} seed{'s' if seeds != 1 else ''})", fontsize=10)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    figure.tight_layout()
    return save_figure(figure, path)
