"""The floors of docs/architecture.md §2 hold: no import under src/egtr goes up or sideways.

The check itself is tests/floors.py; the last test plants each kind of violation in a copy of the
package and makes sure it is caught (a test of the test).
"""

import shutil

import pytest

from egtr.cli import COMMAND_MODULES
from tests.floors import ARCHITECTURE, SOURCE, floors_table, violations


@pytest.fixture(scope="module")
def floors() -> dict[str, int]:
    return floors_table(ARCHITECTURE.read_text(encoding="utf-8"))


def test_the_table_names_every_unit_of_the_package(floors):
    units = {path.stem for path in SOURCE.glob("*.py")} - {"__init__"}
    units |= {path.name for path in SOURCE.iterdir() if (path / "__init__.py").is_file()}
    assert units == set(floors), "docs/architecture.md §2 and src/egtr disagree on the units"
    assert floors["models"] < floors["data"] < floors["inference"] < floors["export"] < floors["cli"]


def test_no_import_goes_up_or_sideways(floors):
    assert violations(SOURCE, floors, COMMAND_MODULES) == []


TYPE_CHECKING_IMPORT = (
    "from typing import TYPE_CHECKING\n\nif TYPE_CHECKING:\n    from egtr.data import images\n"
)
PLANTED = {  # file -> (code, the violation it must cause)
    "models/planted_upward.py": (
        "def helper():\n    from egtr.cli import options\n    return options\n",
        "imports egtr.cli upward (floor 2 models -> floor 7 cli)",
    ),
    "training/planted_sideways.py": (
        TYPE_CHECKING_IMPORT,
        "imports egtr.data sideways (floor 3 training -> floor 3 data)",
    ),
    "data/planted_relative.py": ("from ..inference import predictor\n", "imports egtr.inference upward"),
    "evaluation/planted_lazy.py": (
        '_LAZY = {"SceneGraphPredictor": "egtr.inference.predictor"}\n',
        "imports egtr.inference.predictor upward",
    ),
    "models/planted_facade.py": ("from egtr import SceneGraphPredictor\n", "from the egtr facade"),
    "planted_unit.py": ("x = 1\n", "unit 'planted_unit' is in no floor"),
}


def test_the_check_finds_planted_imports(floors, tmp_path):
    """A copy of the package with imports that break the floors, each in another way, and a command module
    that imports another: every one is reported, and nothing else."""
    planted = tmp_path / "egtr"
    shutil.copytree(SOURCE, planted, ignore=shutil.ignore_patterns("__pycache__"))
    for name, (code, _) in PLANTED.items():
        (planted / name).write_text(code, encoding="utf-8")
    info = planted / "cli" / "info.py"
    info.write_text(info.read_text(encoding="utf-8") + "\nfrom egtr.cli.predict import run\n")
    found = violations(planted, floors, COMMAND_MODULES)
    expected = [message for _, message in PLANTED.values()]
    expected.append("command module cli/info imports command module egtr.cli.predict")
    for message in expected:
        assert any(message in line for line in found), (message, found)
    assert len({line.split(":")[0] for line in found}) == len(expected), found
