"""Figures drawn by matplotlib's Agg renderer without pyplot, saved as PNG atomically.

Every drawing of the project (scene graphs, explanations, training curves, study plots, analysis figures)
starts from `new_figure` and ends in `save_figure`: no global backend switch, nothing to close.
"""

from __future__ import annotations

from pathlib import Path

from egtr.files import write_atomically


def new_figure(width_in: float, height_in: float, dpi: int = 100):
    """A matplotlib Figure of `width_in` x `height_in` inches at `dpi`, attached to an Agg canvas."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width_in, height_in), dpi=dpi)
    FigureCanvasAgg(figure)
    return figure


def save_figure(figure, path: str | Path) -> Path:
    """Save a `new_figure` as PNG atomically, at the figure's own dpi."""
    return write_atomically(path, lambda stream: figure.savefig(stream, format="png", dpi=figure.dpi))
