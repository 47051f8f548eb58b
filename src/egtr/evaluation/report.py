"""Evaluation report: `metrics.json` (machine-readable) and `metrics.md` (readable tables).

`metrics.json`: every scalar metric as a top-level key (fractions in [0,1], null where undefined), the
`per_predicate` table, `counts` and a `settings` object. `metrics.md`: the same numbers in percent.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from egtr.files import write_text

TABLE_KEYS = ("per_predicate", "counts", "settings")
ROW_IDENTITY = ("predicate", "name", "gt_triplets", "images")


def write_report(
    out_dir: str | Path,
    metrics: Mapping[str, Any],
    settings: Mapping[str, Any],
    predicate_names: Sequence[str] | None = None,
) -> tuple[Path, Path]:
    """Write `out_dir/metrics.json` and `out_dir/metrics.md` atomically; returns their paths.

    `metrics` is an evaluator's (or `evaluate_split`'s) result; `predicate_names`, when given, name the
    rows of the per-predicate table.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    report = report_dict(metrics, settings, predicate_names)
    json_path = write_text(out_dir / "metrics.json", json.dumps(report, indent=2, allow_nan=False) + "\n")
    markdown_path = write_text(out_dir / "metrics.md", markdown_report(report))
    return json_path, markdown_path


def report_dict(
    metrics: Mapping[str, Any], settings: Mapping[str, Any], predicate_names: Sequence[str] | None = None
) -> dict:
    """JSON-ready report: scalar metrics first, then `per_predicate`, `counts`, `settings`; NaN -> None."""
    report = {key: _clean(value) for key, value in metrics.items() if key not in TABLE_KEYS}
    rows = [dict(row) for row in metrics.get("per_predicate", [])]
    if predicate_names is not None:
        for row in rows:
            row["name"] = predicate_names[row["predicate"]]
    report["per_predicate"] = _clean(rows)
    report["counts"] = _clean(dict(metrics.get("counts", {})))
    report["settings"] = _clean(dict(settings))
    return report


def markdown_report(report: Mapping[str, Any]) -> str:
    """Markdown tables of a `report_dict`: metrics (percent), counts, settings, per-predicate results."""
    at_k, others = group_metrics(report)
    lines = ["# Evaluation report", "", "## Metrics (%)", ""]
    if at_k:
        ks = sorted({k for values in at_k.values() for k in values})
        lines += ["| metric | " + " | ".join(f"@{k}" for k in ks) + " |", "|---|" + "---:|" * len(ks)]
        lines += [
            f"| {name} | " + " | ".join(_percent(values.get(k)) for k in ks) + " |"
            for name, values in at_k.items()
        ]
        lines.append("")
    if others:
        lines += ["| metric | value |", "|---|---:|"]
        lines += [f"| {key} | {_percent(value)} |" for key, value in others.items()]
    lines += ["", "## Counts", "", "| count | value |", "|---|---:|"]
    lines += [f"| {key} | {value} |" for key, value in report.get("counts", {}).items()]
    lines += ["", "## Settings", "", "| setting | value |", "|---|---|"]
    lines += [f"| {key} | {_cell(value)} |" for key, value in report.get("settings", {}).items()]
    rows = report.get("per_predicate", [])
    if rows:
        columns = [key for key in rows[0] if key not in ROW_IDENTITY]
        lines += ["", "## Per predicate (%)", ""]
        lines += ["| # | predicate | GT triplets | images | " + " | ".join(columns) + " |"]
        lines += ["|---:|---|---:|---:|" + "---:|" * len(columns)]
        for row in rows:
            identity = [row["predicate"], _cell(row["name"]), row["gt_triplets"], row.get("images", "")]
            values = " | ".join(_percent(row[column]) for column in columns)
            lines.append("| " + " | ".join(str(cell) for cell in identity) + f" | {values} |")
    return "\n".join(lines) + "\n"


def text_summary(report: Mapping[str, Any]) -> str:
    """Plain-text table of the scalar metrics of a `report_dict`, in percent (for terminals)."""
    at_k, others = group_metrics(report)
    lines = []
    if at_k:
        ks = sorted({k for values in at_k.values() for k in values})
        width = max(len(name) for name in at_k)
        lines.append(" " * width + "".join(f"{'@' + str(k):>9}" for k in ks))
        for name, values in at_k.items():
            lines.append(f"{name:<{width}}" + "".join(f"{_percent(values.get(k)):>9}" for k in ks))
    if others:
        width = max(len(name) for name in others)
        lines += [f"{name:<{width}} {_percent(value):>8}" for name, value in others.items()]
    return "\n".join(lines)


def group_metrics(report: Mapping[str, Any]) -> tuple[dict[str, dict[int, Any]], dict[str, Any]]:
    """Scalar metrics split into {family: {K: value}} for names like `mR@50` and {name: value} for others."""
    at_k: dict[str, dict[int, Any]] = {}
    others: dict[str, Any] = {}
    for key, value in report.items():
        if key in TABLE_KEYS or isinstance(value, Mapping | list):
            continue
        family, _, k = key.rpartition("@")
        if family and k.isdigit():
            at_k.setdefault(family, {})[int(k)] = value
        else:
            others[key] = value
    return at_k, others


def _clean(value: Any) -> Any:
    """JSON-safe copy: NaN/inf -> None, numpy scalars -> Python numbers, tuples -> lists."""
    if isinstance(value, Mapping):
        return {str(key): _clean(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(item) for item in value]
    if hasattr(value, "item") and not isinstance(value, str):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    return value


def _percent(value: Any) -> str:
    return "–" if value is None else f"{100 * value:.2f}"


def _cell(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, str) else value
    return text.replace("|", "\\|")
