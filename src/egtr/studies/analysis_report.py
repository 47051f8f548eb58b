"""The analysis report: `analysis.json`, `analysis.md` and the PNG figures of `egtr analyze`."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from egtr.figures import new_figure, save_figure
from egtr.files import write_text

FIGURES = ("sources.png", "attention.png", "predicates.png", "confusion.png", "failures.png")


def _number(value: float | None, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _percent(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}"


def markdown_analysis(analysis: Mapping[str, Any]) -> str:
    counts, metrics = analysis["counts"], analysis["metrics"]
    attention = analysis["attention"]
    lines = ["# Analysis of a model over a dataset split", ""]
    lines += ["## Counts", "", "| count | value |", "|---|---:|"]
    lines += [f"| {key} | {value} |" for key, value in counts.items()]
    headline = [
        key for key in ("AP50", "R@20", "R@50", "R@100", "mR@20", "mR@50", "mR@100") if key in metrics
    ]
    if headline:
        lines += ["", "## Metrics (%)", "", "| " + " | ".join(headline) + " |", "|" + "---:|" * len(headline)]
        lines.append("| " + " | ".join(_percent(metrics[key]) for key in headline) + " |")
    lines += [
        "",
        "## Relation sources",
        "",
        "Gate: mean sigmoid gate of the source at the two matched queries of related / unrelated "
        "ground-truth pairs, and the AUC of the gate value as a relatedness score. Probe AUC: a logistic "
        "regression on the source's ungated pair features [a_i; b_j; a_i * b_j], fitted on half of the "
        "images, ROC AUC on the other half (0.5 = no information).",
        "",
        "| source | gate, related | gate, unrelated | gate AUC | probe AUC | probe pairs (train / test) |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for row in analysis["sources"]:
        lines.append(
            f"| {row['source']} | {_number(row['gate_related'])} | {_number(row['gate_unrelated'])} | "
            f"{_number(row['gate_auc'])} | {_number(row['probe_auc'])} | "
            f"{row['probe_train_pairs']} / {row['probe_test_pairs']} |"
        )
    lines += [
        "",
        "## Self-attention between the two objects' queries",
        "",
        "Decoder self-attention weight of the subject's query on the object's key (i → j) and back (j → i), "
        f"mean over heads; uniform attention is 1/N = {attention['uniform']:.4f}. Effect size: Cohen's d of "
        "related vs unrelated pairs; AUC: the weight as a relatedness score.",
        "",
        "| layer | i → j related (mean / median) | i → j unrelated | d | AUC "
        "| j → i related | j → i unrelated | d | AUC |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in attention["layers"]:
        cells = []
        for direction in ("forward", "backward"):
            stats = row[direction]
            cells += [
                f"{_number(stats['related_mean'], 4)} / {_number(stats['related_median'], 4)}",
                f"{_number(stats['unrelated_mean'], 4)} / {_number(stats['unrelated_median'], 4)}",
                _number(stats["cohen_d"], 2),
                _number(stats["auc"]),
            ]
        lines.append(f"| {row['layer']} | " + " | ".join(cells) + " |")
    column = analysis["per_predicate_column"]
    lines += [
        "",
        f"## Per predicate ({column}, %)",
        "",
        f"| predicate | GT triplets | {column} |",
        "|---|---:|---:|",
    ]
    lines += [
        f"| {row['predicate']} | {row['gt_triplets']} | {_percent(row[column])} |"
        for row in analysis["per_predicate"]
    ]
    lines += ["", "## Most frequent predicate confusions", ""]
    lines += [
        "The predicate the model scores highest at the two matched queries of a ground-truth triplet, "
        "when it is not the true one (full matrix in analysis.json and confusion.png).",
        "",
        "| true predicate | predicted | triplets | share of the true predicate's triplets |",
        "|---|---|---:|---:|",
    ]
    for true, predicted, count, share in top_confusions(analysis["confusion"]):
        lines.append(f"| {true} | {predicted} | {count} | {100 * share:.1f}% |")
    failures = analysis["failures"]
    total = sum(failures.values())
    lines += ["", f"## Where ground-truth triplets fail (top {analysis['settings']['top_k']})", ""]
    lines += ["| outcome | triplets | share |", "|---|---:|---:|"]
    lines += [
        f"| {key} | {value} | {100 * value / total:.1f}% |" if total else f"| {key} | {value} | – |"
        for key, value in failures.items()
    ]
    lines += ["", "## Settings", "", "| setting | value |", "|---|---|"]
    lines += [f"| {key} | {value} |" for key, value in analysis["settings"].items()]
    return "\n".join(lines) + "\n"


def top_confusions(confusion: Mapping[str, Any], limit: int = 10) -> list[tuple[str, str, int, float]]:
    """The `limit` largest off-diagonal entries: (true, predicted, count, count / row total)."""
    counts = np.asarray(confusion["counts"], dtype=np.int64)
    names = confusion["predicates"]
    totals = counts.sum(1)
    entries = [
        (names[true], names[predicted], int(counts[true, predicted]), counts[true, predicted] / totals[true])
        for true in range(len(names))
        for predicted in range(len(names))
        if true != predicted and counts[true, predicted] > 0
    ]
    return sorted(entries, key=lambda entry: -entry[2])[:limit]


def draw_sources(analysis: Mapping[str, Any], path: Path) -> Path:
    rows = analysis["sources"]
    names = [row["source"] for row in rows]
    positions = np.arange(len(rows))
    figure = new_figure(10, 4)
    gates, probes = figure.subplots(1, 2)
    nan = float("nan")
    for offset, key, label in (
        (-0.2, "gate_related", "related pairs"),
        (0.2, "gate_unrelated", "unrelated pairs"),
    ):
        gates.bar(
            positions + offset, [nan if row[key] is None else row[key] for row in rows], 0.4, label=label
        )
    gates.set_xticks(positions, names, rotation=20, ha="right", fontsize=8)
    gates.set_ylim(0, 1)
    gates.set_ylabel("mean gate (sigmoid)")
    gates.set_title("gate of each relation source")
    gates.legend(fontsize=8)
    probes.bar(
        positions,
        [nan if row["probe_auc"] is None else row["probe_auc"] for row in rows],
        0.6,
        color="tab:green",
    )
    probes.axhline(0.5, color="grey", linestyle="--", linewidth=1, label="chance (0.5)")
    probes.set_xticks(positions, names, rotation=20, ha="right", fontsize=8)
    probes.set_ylim(0, 1)
    probes.set_ylabel("ROC AUC on held-out images")
    probes.set_title("linear probe: related vs unrelated pairs")
    probes.legend(fontsize=8)
    figure.tight_layout()
    return save_figure(figure, path)


def draw_attention(analysis: Mapping[str, Any], arrays: Mapping[str, np.ndarray], path: Path) -> Path:
    """Per decoder layer: distributions of log10 attention weight i -> j for related vs unrelated pairs."""
    layers = analysis["attention"]["layers"]
    figure = new_figure(3.4 * max(1, len(layers)), 3.4)
    axes = np.atleast_1d(figure.subplots(1, max(1, len(layers))))
    related = arrays["related"]
    uniform = np.log10(analysis["attention"]["uniform"])
    for axis, row in zip(axes, layers):
        values = np.log10(np.clip(arrays["forward"][:, row["layer"] - 1], 1e-12, None))
        bins = (
            np.linspace(values.min(), values.max(), 30) if len(values) and values.max() > values.min() else 30
        )
        for mask, label, colour in ((related, "related", "tab:red"), (~related, "unrelated", "tab:blue")):
            if mask.any():
                axis.hist(values[mask], bins=bins, density=True, alpha=0.5, color=colour, label=label)
        axis.axvline(uniform, color="grey", linestyle="--", linewidth=1, label="uniform 1/N")
        stats = row["forward"]
        axis.set_title(
            f"layer {row['layer']}: d = {_number(stats['cohen_d'], 2)}, AUC = {_number(stats['auc'], 2)}",
            fontsize=9,
        )
        axis.set_xlabel("log10 attention weight, subject → object")
    axes[0].set_ylabel("density")
    axes[0].legend(fontsize=8)
    figure.tight_layout()
    return save_figure(figure, path)


def draw_predicates(analysis: Mapping[str, Any], path: Path) -> Path:
    rows = analysis["per_predicate"]
    column = analysis["per_predicate_column"]
    figure = new_figure(7, 0.8 + 0.3 * len(rows))
    axis = figure.subplots()
    values = [float("nan") if row[column] is None else 100 * row[column] for row in rows]
    axis.barh(np.arange(len(rows)), values, color="tab:purple")
    axis.set_yticks(
        np.arange(len(rows)), [f"{row['predicate']} ({row['gt_triplets']})" for row in rows], fontsize=8
    )
    axis.invert_yaxis()
    axis.set_xlabel(f"{column} (%)")
    axis.set_title("per-predicate result (ground-truth triplets in brackets)", fontsize=10)
    figure.tight_layout()
    return save_figure(figure, path)


def draw_confusion(analysis: Mapping[str, Any], path: Path) -> Path:
    counts = np.asarray(analysis["confusion"]["counts"], dtype=np.float64)
    names = analysis["confusion"]["predicates"]
    shares = counts / np.clip(counts.sum(1, keepdims=True), 1, None)
    side = 2.5 + 0.35 * len(names)
    figure = new_figure(side + 1, side)
    axis = figure.subplots()
    image = axis.imshow(shares, cmap="viridis", vmin=0, vmax=1)
    axis.set_xticks(np.arange(len(names)), names, rotation=60, ha="right", fontsize=7)
    axis.set_yticks(np.arange(len(names)), names, fontsize=7)
    axis.set_xlabel("predicted (highest score at the matched queries)")
    axis.set_ylabel("true predicate")
    figure.colorbar(image, ax=axis, label="share of the true predicate's triplets")
    figure.tight_layout()
    return save_figure(figure, path)


def draw_failures(analysis: Mapping[str, Any], path: Path) -> Path:
    failures = analysis["failures"]
    figure = new_figure(7, 3)
    axis = figure.subplots()
    axis.barh(np.arange(len(failures)), list(failures.values()), color="tab:orange")
    axis.set_yticks(np.arange(len(failures)), list(failures), fontsize=8)
    axis.invert_yaxis()
    axis.set_xlabel("ground-truth triplets")
    axis.set_title(
        f"outcome of each ground-truth triplet at top {analysis['settings']['top_k']}", fontsize=10
    )
    figure.tight_layout()
    return save_figure(figure, path)


def write_analysis(out: Path, analysis: dict, arrays: Mapping[str, np.ndarray]) -> list[Path]:
    """Write OUT/analysis.json, OUT/analysis.md and the figures; returns their paths."""
    out = Path(out)
    paths = [
        write_text(out / "analysis.json", json.dumps(analysis, indent=2, allow_nan=False) + "\n"),
        write_text(out / "analysis.md", markdown_analysis(analysis)),
        draw_sources(analysis, out / "sources.png"),
        draw_attention(analysis, arrays, out / "attention.png"),
        draw_predicates(analysis, out / "predicates.png"),
        draw_confusion(analysis, out / "confusion.png"),
        draw_failures(analysis, out / "failures.png"),
    ]
    return paths
