"""The floors of docs/architecture.md §2, read from its table, and every import under src/egtr checked
against them (the checker behind tests/test_floors.py).

A unit is a top-level module (`config.py`) or package (`models/`) of src/egtr. A unit may import only
units on lower floors: an import of a unit on its own floor (sideways) or above (upward) is a violation,
wherever it stands (module level, inside a function, under `if TYPE_CHECKING:`), and so is a module
name written in a package's lazy-import table (`_LAZY = {"name": "egtr.unit.module"}`). Inside `cli/`,
the command modules (one per sub-command) may import the shared ones but not one another. The package
facade `egtr/__init__.py` may name any unit lazily; `from egtr import __version__` is allowed anywhere.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "src" / "egtr"
ARCHITECTURE = ROOT / "docs" / "architecture.md"
FACADE = "__init__"  # egtr/__init__.py: the public names, imported lazily
ROOT_NAMES = {"__version__"}  # what any module may take from the facade


@dataclass(frozen=True)
class Import:
    module: str  # the importing module, e.g. "egtr.cli.predict"
    target: str  # the imported module, e.g. "egtr.inference.predictor"
    names: tuple[str, ...]  # names taken from it with `from ... import` (empty for `import x`)
    line: int


def floors_table(text: str) -> dict[str, int]:
    """{unit: floor} from the §2 table of architecture.md: rows `| N | `a.py`, `b/` | ... |`."""
    section = text.split("## 2. Layers", 1)[1].split("\n## ", 1)[0]
    floors: dict[str, int] = {}
    for row in re.finditer(r"^\|\s*(\d+)\s*\|([^|]*)\|", section, flags=re.MULTILINE):
        for name in re.findall(r"`([^`]+)`", row.group(2)):
            floors[name.removesuffix(".py").removesuffix("/")] = int(row.group(1))
    return floors


def module_name(path: Path, source: Path) -> str:
    parts = path.relative_to(source.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, source: Path) -> Iterator[Import]:
    """Every egtr import of the module at `path`: statements anywhere in it and its lazy-import table."""
    module = module_name(path, source)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(module, alias.name, (), node.lineno)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([node.module] if node.module else [])])
            names = tuple(alias.name for alias in node.names)
            yield Import(module, base, names, node.lineno)
            if base != "egtr":  # `from egtr.cli import options` imports the module egtr.cli.options
                for name in names:
                    yield Import(module, f"{base}.{name}", (), node.lineno)
        elif isinstance(node, ast.Assign) and any(
            isinstance(target, ast.Name) and target.id == "_LAZY" for target in node.targets
        ):
            for value in ast.walk(node.value):
                if isinstance(value, ast.Constant) and str(value.value).startswith("egtr."):
                    yield Import(module, value.value, (), value.lineno)


def unit_of(module: str) -> str | None:
    """The unit of a module name ("egtr.cli.predict" -> "cli"); FACADE for "egtr"; None outside egtr."""
    parts = module.split(".")
    if parts[0] != "egtr":
        return None
    return parts[1] if len(parts) > 1 else FACADE


def violations(source: Path, floors: dict[str, int], commands: tuple[str, ...] = ()) -> list[str]:
    """Every import under `source` (an `egtr` package folder) that the floors forbid, as readable lines;
    `commands`: the command modules of cli/, which must not import one another."""
    found = []
    for path in sorted(source.rglob("*.py")):
        module = module_name(path, source)
        unit = unit_of(module)
        where = f"{path.relative_to(source.parent)}"
        if unit == FACADE:
            continue
        if unit not in floors:
            found.append(f"{where}: unit {unit!r} is in no floor of the architecture.md table")
            continue
        for item in imports(path, source):
            target = unit_of(item.target)
            if target is None or (target == FACADE and set(item.names) <= ROOT_NAMES):
                continue
            if target == FACADE:
                found.append(f"{where}:{item.line}: imports {', '.join(item.names)} from the egtr facade")
            elif target == unit:
                found.extend(command_violation(where, item, commands))
            elif target not in floors:
                found.append(f"{where}:{item.line}: imports {item.target}, in no floor of the table")
            elif floors[target] >= floors[unit]:
                direction = "sideways" if floors[target] == floors[unit] else "upward"
                found.append(
                    f"{where}:{item.line}: imports {item.target} {direction} "
                    f"(floor {floors[unit]} {unit} -> floor {floors[target]} {target})"
                )
    return sorted(set(found))


def command_violation(where: str, item: Import, commands: tuple[str, ...]) -> list[str]:
    """A cli command module importing another command module (both in `commands`)."""
    importer, imported = item.module.split("."), item.target.split(".")
    if importer[1] != "cli" or len(importer) < 3 or len(imported) < 3:
        return []
    if importer[2] in commands and imported[2] in commands and importer[2] != imported[2]:
        return [f"{where}:{item.line}: command module cli/{importer[2]} imports command module {item.target}"]
    return []
