"""Study files: a named list of variants, each a set of config overrides, read from JSON.

A study file (shipped ones live in `egtr/studies/files/`, a user passes a path) is a JSON object:

    {"name": "smoothing", "title": "...", "description": "...",
     "metrics": ["R@50", "mR@50", ...],                     table columns (default: DEFAULT_METRICS)
     "paper": {"status": "unconfirmed", "source": "..."},    how far the paper numbers below can be trusted
     "plot": {"x": "smoothing", "label": "...", "log": true, "metrics": ["R@50", "mR@50"]},
     "variants": [{"name": "...", "model": {EGTRConfig overrides}, "settings": {TrainSettings overrides},
                   "paper": {"R@50": 30.2}, "note": "...", "each_decoder_layer": false}, ...]}

`paper` values are percentages as printed in the paper. A variant with `each_decoder_layer` stands for one
variant per decoder layer of the model (`relation_attention_layers = [layer]`, `{layer}` in its name is the
1-based layer number); `Study.expanded(decoder_layers)` writes them out once the model is known. `plot.x`
names a model override that every variant sets: the plot is then a curve over it (`log`: logarithmic axis;
variants with x = 0 are drawn as horizontal lines), otherwise a bar chart.
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from egtr.config import EGTRConfig
from egtr.engine.settings import TrainSettings

DEFAULT_METRICS = ("R@20", "R@50", "R@100", "mR@20", "mR@50", "mR@100", "AP50")
PAPER_STATUSES = ("confirmed", "unconfirmed", "not reported")
# set by the runner for every run, so a study cannot override them
RUNNER_SETTINGS = ("phase", "dataset", "data", "out", "init_from", "seed", "resume")
# sized to the dataset by the engine
DATASET_FIELDS = ("num_labels", "num_rel_labels", "class_names", "predicate_names")
STUDY_KEYS = ("name", "title", "description", "metrics", "paper", "plot", "variants")
VARIANT_KEYS = ("name", "model", "settings", "paper", "note", "each_decoder_layer")
PLOT_KEYS = ("x", "label", "log", "metrics")


class StudyError(ValueError):
    """A study file is malformed; the message names the file, the variant and the field."""


@dataclass(frozen=True)
class Variant:
    name: str
    model: dict[str, Any] = field(default_factory=dict)  # EGTRConfig overrides
    settings: dict[str, Any] = field(default_factory=dict)  # TrainSettings overrides
    paper: dict[str, float] = field(default_factory=dict)  # metric -> percent, where the paper reports it
    note: str = ""
    each_decoder_layer: bool = False

    @property
    def slug(self) -> str:
        """A folder name for the variant's runs, derived from its name."""
        return slugify(self.name)


@dataclass(frozen=True)
class PlotSpec:
    x: str | None = None  # model override on the x axis (None: a bar chart of the variants)
    label: str = ""
    log: bool = False
    metrics: tuple[str, ...] = ("R@50", "mR@50")


@dataclass(frozen=True)
class Study:
    name: str
    title: str
    description: str
    variants: tuple[Variant, ...]
    metrics: tuple[str, ...] = DEFAULT_METRICS
    paper_status: str = "not reported"
    paper_source: str = ""
    plot: PlotSpec = PlotSpec()
    source: str = ""  # the file it was read from

    def expanded(self, decoder_layers: int) -> Study:
        """The study with every `each_decoder_layer` variant written out for `decoder_layers` layers."""
        variants: list[Variant] = []
        for variant in self.variants:
            if not variant.each_decoder_layer:
                variants.append(variant)
                continue
            for layer in range(decoder_layers):
                variants.append(
                    dataclasses.replace(
                        variant,
                        name=variant.name.replace("{layer}", str(layer + 1)),
                        model={**variant.model, "relation_attention_layers": [layer]},
                        each_decoder_layer=False,
                    )
                )
        study = dataclasses.replace(self, variants=tuple(variants))
        check_unique_slugs(study.variants, self.source)
        return study

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def slugify(name: str) -> str:
    return re.sub(r"[^a-z0-9.]+", "-", name.lower()).strip("-.")


def shipped_studies() -> list[str]:
    """Names of the study files that ship with egtr."""
    folder = resources.files("egtr.studies") / "files"
    return sorted(entry.name[:-5] for entry in folder.iterdir() if entry.name.endswith(".json"))


def load_study(name_or_path: str | Path) -> Study:
    """A shipped study by name (`smoothing`), or a study file by path (`my_study.json`)."""
    text = str(name_or_path)
    if text in shipped_studies():
        source = resources.files("egtr.studies") / "files" / f"{text}.json"
        return parse_study(source.read_text(encoding="utf-8"), f"study {text}")
    path = Path(text)
    if not path.is_file():
        raise StudyError(
            f"{text}: no such study file, and not a shipped study ({', '.join(shipped_studies())})"
        )
    return parse_study(path.read_text(encoding="utf-8"), str(path))


def parse_study(text: str, source: str) -> Study:
    """A Study from the JSON text of a study file; `source` names the file in error messages."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise StudyError(f"{source}: not valid JSON ({error})") from error
    if not isinstance(data, dict):
        raise StudyError(f"{source}: expected a JSON object")
    _check_keys(data, STUDY_KEYS, source)
    for key in ("name", "variants"):
        if key not in data:
            raise StudyError(f"{source}: missing field {key!r}")
    name = _string(data, "name", source)
    if not slugify(name):
        raise StudyError(f"{source}: field 'name' must contain letters or digits")
    metrics = tuple(data.get("metrics", DEFAULT_METRICS))
    if not metrics or not all(isinstance(metric, str) for metric in metrics):
        raise StudyError(f"{source}: field 'metrics' must be a non-empty list of metric names")
    paper = data.get("paper", {})
    if not isinstance(paper, dict):
        raise StudyError(f"{source}: field 'paper' must be an object")
    _check_keys(paper, ("status", "source"), f"{source}: paper")
    status = paper.get("status", "not reported")
    if status not in PAPER_STATUSES:
        raise StudyError(f"{source}: paper.status must be one of {PAPER_STATUSES}, got {status!r}")
    if not isinstance(data["variants"], list) or not data["variants"]:
        raise StudyError(f"{source}: field 'variants' must be a non-empty list")
    variants = tuple(
        parse_variant(entry, f"{source}: variant {index + 1}") for index, entry in enumerate(data["variants"])
    )
    check_unique_slugs(variants, source)
    plot = parse_plot(data.get("plot", {}), variants, source)
    return Study(
        name=name,
        title=str(data.get("title", name)),
        description=str(data.get("description", "")),
        variants=variants,
        metrics=metrics,
        paper_status=status,
        paper_source=str(paper.get("source", "")),
        plot=plot,
        source=source,
    )


def parse_variant(entry: Any, where: str) -> Variant:
    if not isinstance(entry, dict):
        raise StudyError(f"{where}: expected an object")
    _check_keys(entry, VARIANT_KEYS, where)
    if "name" not in entry:
        raise StudyError(f"{where}: missing field 'name'")
    name = _string(entry, "name", where)
    where = f"{where} ({name!r})"
    if not slugify(name):
        raise StudyError(f"{where}: the name must contain letters or digits")
    model = entry.get("model", {})
    settings = entry.get("settings", {})
    paper = entry.get("paper", {})
    for key, value in (("model", model), ("settings", settings), ("paper", paper)):
        if not isinstance(value, dict):
            raise StudyError(f"{where}: field {key!r} must be an object")
    model_fields = {f.name for f in dataclasses.fields(EGTRConfig)} - set(DATASET_FIELDS)
    _check_keys(model, tuple(sorted(model_fields)), f"{where}: model", what="EGTRConfig field")
    settings_fields = {f.name for f in dataclasses.fields(TrainSettings)} - set(RUNNER_SETTINGS) - {"model"}
    _check_keys(settings, tuple(sorted(settings_fields)), f"{where}: settings", what="TrainSettings field")
    for metric, value in paper.items():
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise StudyError(f"{where}: paper.{metric} must be a number (percent), got {value!r}")
    each_layer = entry.get("each_decoder_layer", False)
    if not isinstance(each_layer, bool):
        raise StudyError(f"{where}: field 'each_decoder_layer' must be true or false")
    if each_layer and "relation_attention_layers" in model:
        raise StudyError(f"{where}: each_decoder_layer sets relation_attention_layers itself")
    try:  # catch bad values (e.g. an unknown relation function) before any training starts
        EGTRConfig(**{**model, **({"relation_attention_layers": [0]} if each_layer else {})})
    except (TypeError, ValueError) as error:
        raise StudyError(f"{where}: model: {error}") from error
    return Variant(name, dict(model), dict(settings), dict(paper), str(entry.get("note", "")), each_layer)


def parse_plot(entry: Any, variants: tuple[Variant, ...], source: str) -> PlotSpec:
    if not isinstance(entry, dict):
        raise StudyError(f"{source}: field 'plot' must be an object")
    _check_keys(entry, PLOT_KEYS, f"{source}: plot")
    x = entry.get("x")
    if x is not None:
        for variant in variants:
            value = variant.model.get(x)
            if not isinstance(value, int | float) or isinstance(value, bool):
                raise StudyError(
                    f"{source}: plot.x is {x!r}, but variant {variant.name!r} sets no number for it"
                )
    metrics = tuple(entry.get("metrics", PlotSpec.metrics))
    return PlotSpec(
        x=x, label=str(entry.get("label", x or "")), log=bool(entry.get("log", False)), metrics=metrics
    )


def check_unique_slugs(variants: tuple[Variant, ...], source: str) -> None:
    seen: dict[str, str] = {}
    for variant in variants:
        if variant.slug in seen:
            raise StudyError(
                f"{source}: variants {seen[variant.slug]!r} and {variant.name!r} need distinct names "
                f"(both give the folder name {variant.slug!r})"
            )
        seen[variant.slug] = variant.name


def _check_keys(entry: dict, allowed: tuple[str, ...], where: str, what: str = "field") -> None:
    unknown = sorted(set(entry) - set(allowed))
    if unknown:
        raise StudyError(f"{where}: unknown {what}(s) {', '.join(map(repr, unknown))}")


def _string(entry: dict, key: str, where: str) -> str:
    value = entry[key]
    if not isinstance(value, str) or not value.strip():
        raise StudyError(f"{where}: field {key!r} must be a non-empty string")
    return value
