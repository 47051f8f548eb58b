"""Class and predicate names of a model, from wherever they can be found.

Order of precedence:
1. `names` given by the user: a JSON file or a dataset directory (see `read_names`), or a dict;
2. the names stored in the model's config (this project's checkpoints trained on a named dataset);
3. the packaged Visual Genome 150/50 lists for a 150-class / 50-predicate model (official VG checkpoints
   carry only LABEL_i placeholders);
4. placeholders `class_<i>` / `predicate_<i>`, with a note saying how to get real names.

Names files (JSON objects) may use any of these key pairs: `objects`/`predicates` (this project's lists),
`obj`/`rel` (Open Images `categories_dict.json`), `class_names`/`predicate_names`, or
`idx_to_label`/`idx_to_predicate` ({"1": name, ...}, Scene-Graph-Benchmark `VG-SGG-dicts-with-attri.json`).
A file may hold only one of the two lists; the other then comes from the next source.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from egtr.config import EGTRConfig

VISUAL_GENOME_NAMES = "visual_genome_150_50.json"
OBJECT_KEYS = ("objects", "obj", "class_names", "idx_to_label")
PREDICATE_KEYS = ("predicates", "rel", "predicate_names", "idx_to_predicate")
OPEN_IMAGES_CATEGORIES = Path("annotations") / "categories_dict.json"


@dataclass(frozen=True)
class Vocabulary:
    class_names: list[str]  # [C]
    predicate_names: list[str]  # [R]
    source: str  # where the names came from, for reports
    note: str | None = None  # what to do when the names are placeholders


def packaged_visual_genome_names() -> dict[str, list[str]]:
    """The Visual Genome 150 object and 50 predicate names shipped with the package."""
    text = (
        resources.files("egtr")
        .joinpath("resources")
        .joinpath(VISUAL_GENOME_NAMES)
        .read_text(encoding="utf-8")
    )
    data = json.loads(text)
    return {"objects": data["objects"], "predicates": data["predicates"]}


def _name_list(value: Any, source: str, key: str) -> list[str]:
    if isinstance(value, dict):  # {"1": name, ...}, 1-based
        expected = [str(i) for i in range(1, len(value) + 1)]
        if sorted(value, key=lambda k: (len(k), k)) != expected:
            raise ValueError(f"{source}: {key} must have the keys '1'..'{len(value)}'")
        value = [value[k] for k in expected]
    if not isinstance(value, list) or not all(isinstance(name, str) for name in value):
        raise ValueError(f"{source}: {key} must be a list of names (strings)")
    return value


def names_from_mapping(data: dict[str, Any], source: str) -> dict[str, list[str]]:
    """{"objects": [...], "predicates": [...]} (either may be missing) from any supported key pair."""
    found = {}
    for role, keys in (("objects", OBJECT_KEYS), ("predicates", PREDICATE_KEYS)):
        key = next((k for k in keys if k in data), None)
        if key is not None:
            found[role] = _name_list(data[key], source, key)
    if not found:
        raise ValueError(
            f"{source}: no names found; expected one of the keys {', '.join(OBJECT_KEYS + PREDICATE_KEYS)}"
        )
    return found


def read_names(path: str | Path) -> dict[str, list[str]]:
    """Names from a JSON file (module docstring) or a dataset directory of any supported layout.

    An Open Images directory is read from `annotations/categories_dict.json` alone; other layouts through
    `egtr.data.load_dataset` on their first split.
    """
    path = Path(path)
    if path.is_dir():
        if (path / OPEN_IMAGES_CATEGORIES).is_file():
            return read_names(path / OPEN_IMAGES_CATEGORIES)
        return _dataset_names(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: names file or dataset directory not found")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{path}: not a JSON names file ({error})") from error
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a names file must hold a JSON object")
    return names_from_mapping(data, str(path))


def _dataset_names(root: Path) -> dict[str, list[str]]:
    from egtr.data import NotADatasetError, detect_layout, load_dataset

    try:
        layout = detect_layout(root)
    except NotADatasetError as error:
        raise ValueError(f"--names: {error}") from error
    split = load_dataset(root, layout.available_splits(root)[0])
    return {"objects": split.class_names, "predicates": split.predicate_names}


def _given_names(config: EGTRConfig, names: str | Path | dict | None) -> tuple[dict[str, list[str]], str]:
    """Names the user gave (either list may be missing) and where from; their counts must fit the model."""
    if names is None:
        return {}, ""
    given, source = (
        (names_from_mapping(names, "names"), "names given")
        if isinstance(names, dict)
        else (read_names(names), str(names))
    )
    counts = {"objects": config.num_labels, "predicates": config.num_rel_labels}
    for role, found in given.items():
        if len(found) != counts[role]:
            kind = "classes" if role == "objects" else "predicates"
            raise ValueError(
                f"{source}: {len(found)} {role[:-1]} names, but the model has {counts[role]} {kind}"
            )
    return given, source


def resolve_vocabulary(config: EGTRConfig, names: str | Path | dict | None = None) -> Vocabulary:
    """The model's class and predicate names by the precedence in the module docstring.

    Raises ValueError when given names do not match the model's number of classes or predicates.
    """
    given, source = _given_names(config, names)
    packaged = (
        packaged_visual_genome_names() if (config.num_labels, config.num_rel_labels) == (150, 50) else {}
    )
    candidates = {
        "objects": (config.num_labels, "class", config.class_names),
        "predicates": (config.num_rel_labels, "predicate", config.predicate_names),
    }
    chosen, origins = {}, {}
    for role, (count, prefix, stored) in candidates.items():
        for names_found, origin in (
            (given.get(role), source),
            (stored, "model config"),
            (packaged.get(role), "Visual Genome 150/50 (packaged)"),
            ([f"{prefix}_{i}" for i in range(count)], "placeholders"),
        ):
            if names_found is not None:
                chosen[role], origins[role] = list(names_found), origin
                break
    note = None
    if "placeholders" in origins.values():
        note = (
            "the model carries no class or predicate names: pass --names FILE (JSON) or a dataset "
            "directory (e.g. an Open Images root with annotations/categories_dict.json)"
        )
    same = origins["objects"] == origins["predicates"]
    described = (
        origins["objects"] if same else f"objects: {origins['objects']}; predicates: {origins['predicates']}"
    )
    return Vocabulary(chosen["objects"], chosen["predicates"], described, note)
