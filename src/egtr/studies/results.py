"""A study's results: `results.json` (every metric of every run), `results.md` (the table) and the plot.

The table shows, per variant and metric, mean ± sample standard deviation over the seeds in percent; the
best mean of each column is bold (all metrics are higher-is-better). Beside it, the paper's numbers where
the study file gives them for that row, marked with the study's paper status.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from egtr.files import write_text
from egtr.studies.study import Study


def scalar_metrics(metrics: Mapping[str, Any]) -> dict[str, float | None]:
    """The numeric top-level metrics of a run (tables and counts left out)."""
    return {
        key: value
        for key, value in metrics.items()
        if value is None or (isinstance(value, int | float) and not isinstance(value, bool))
    }


def mean_std(values: Sequence[float | None]) -> tuple[float | None, float | None, int]:
    """Mean, sample standard deviation (None below 2 values) and count of the defined values."""
    defined = [float(value) for value in values if value is not None and not math.isnan(value)]
    if not defined:
        return None, None, 0
    mean = sum(defined) / len(defined)
    if len(defined) < 2:
        return mean, None, len(defined)
    variance = sum((value - mean) ** 2 for value in defined) / (len(defined) - 1)
    return mean, math.sqrt(variance), len(defined)


def summarize(study: Study, records: Mapping[str, list[dict]]) -> list[dict]:
    """Per variant: its definition, its runs (seed, minutes, every metric) and mean/std per metric."""
    rows = []
    for variant in study.variants:
        runs = sorted(records.get(variant.slug, []), key=lambda record: record["seed"])
        names = sorted({key for run in runs for key in scalar_metrics(run["metrics"])})
        summary = {}
        for name in names:
            mean, std, count = mean_std([scalar_metrics(run["metrics"]).get(name) for run in runs])
            summary[name] = {"mean": mean, "std": std, "n": count}
        rows.append(
            {
                "name": variant.name,
                "slug": variant.slug,
                "model": variant.model,
                "settings": variant.settings,
                "paper": variant.paper,
                "note": variant.note,
                "summary": summary,
                "runs": [
                    {
                        "seed": run["seed"],
                        "minutes": run["minutes"],
                        "folder": str(Path("runs") / variant.slug / f"seed-{run['seed']}"),
                        "metrics": run["metrics"],
                    }
                    for run in runs
                ],
            }
        )
    return rows


def percent(value: float | None, std: float | None = None) -> str:
    if value is None:
        return "–"
    text = f"{100 * value:.1f}"
    return f"{text} ± {100 * std:.1f}" if std is not None else text


def best_means(rows: list[dict], metrics: Sequence[str]) -> dict[str, float]:
    """Per metric, the best mean shown (rounded as printed, so equal-looking cells are all marked)."""
    best = {}
    for metric in metrics:
        means = [row["summary"].get(metric, {}).get("mean") for row in rows]
        shown = [round(100 * mean, 1) for mean in means if mean is not None]
        if shown:
            best[metric] = max(shown)
    return best


def paper_cell(study: Study, variant: Mapping[str, Any], metrics: Sequence[str]) -> str:
    """The paper's numbers for a row (percent, in the study's metric order) with the paper status."""
    if study.paper_status == "not reported":
        return "not reported"
    reported = [f"{metric} {variant['paper'][metric]:g}" for metric in metrics if metric in variant["paper"]]
    extra = [f"{metric} {value:g}" for metric, value in variant["paper"].items() if metric not in metrics]
    parts = reported + extra
    text = ", ".join(parts) if parts else "–"
    if parts and study.paper_status == "unconfirmed":
        text += " (unconfirmed)"
    if variant["note"]:
        text = f"{text}; {variant['note']}" if parts else variant["note"]
    return text


def markdown_table(study: Study, rows: list[dict], context: Mapping[str, Any]) -> str:
    metrics = list(study.metrics)
    best = best_means(rows, metrics)
    seeds = sorted({run["seed"] for row in rows for run in row["runs"]})
    lines = [f"# {study.title}", ""] + ([study.description, ""] if study.description else [])
    lines += [
        f"Mean ± standard deviation over {len(seeds)} seed(s) ({', '.join(map(str, seeds))}) in percent; "
        "bold: best mean of the column. Every variant trains the EGTR phase from the same shared detector.",
        "",
        "| variant | " + " | ".join(metrics) + " | paper |",
        "|---|" + "---:|" * len(metrics) + "---|",
    ]
    for row in rows:
        cells = []
        for metric in metrics:
            stats = row["summary"].get(metric, {})
            cell = percent(stats.get("mean"), stats.get("std"))
            mean = stats.get("mean")
            if mean is not None and round(100 * mean, 1) == best.get(metric):
                cell = f"**{cell}**"
            cells.append(cell)
        runs = (
            f" ({len(row['runs'])} run{'s' if len(row['runs']) != 1 else ''})"
            if len(row["runs"]) != len(seeds)
            else ""
        )
        lines.append(
            f"| {row['name']}{runs} | " + " | ".join(cells) + f" | {paper_cell(study, row, metrics)} |"
        )
    if study.paper_source:
        lines += ["", f"Paper numbers: {study.paper_source} ({study.paper_status})."]
    lines += ["", "## Variants", "", "| variant | model overrides | settings overrides |", "|---|---|---|"]
    for row in rows:
        lines.append(f"| {row['name']} | {_json_cell(row['model'])} | {_json_cell(row['settings'])} |")
    lines += ["", "## Settings", "", "| setting | value |", "|---|---|"]
    lines += [f"| {key} | {_json_cell(value)} |" for key, value in context.items()]
    return "\n".join(lines) + "\n"


def _json_cell(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False).replace("|", "\\|") if value not in ({}, None) else "–"


def write_results(
    out: Path, study: Study, records: Mapping[str, list[dict]], context: Mapping[str, Any]
) -> tuple[Path, Path, Path]:
    """Write OUT/results.json, OUT/results.md and OUT/<study>.png; returns their paths."""
    from egtr.studies.plots import plot_study

    out = Path(out)
    rows = summarize(study, records)
    document = {"study": study.to_dict(), "settings": dict(context), "variants": rows}
    json_path = write_text(out / "results.json", json.dumps(document, indent=2, allow_nan=False) + "\n")
    markdown_path = write_text(out / "results.md", markdown_table(study, rows, context))
    figure_path = plot_study(study, rows, out / f"{study.name}.png")
    return json_path, markdown_path, figure_path
