"""The README's two set-up commands as a fresh Debian machine runs them: the test command installs Chromium
with apt-get (index updated first), through sudo for a user and directly as root, and only when missing.

The browser part of the command runs under bash with stand-ins for `id`, `sudo` and `apt-get` that log
their calls; the rest (venv, pip, pytest) is what CI runs itself.
"""

import os
import re
import stat
import subprocess
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
VENV_STEP = " && python3 -m venv .venv"


def setup_commands() -> list[str]:
    """The commands of the README's first code block (its first screen)."""
    block = re.search(r"```bash\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.DOTALL)
    return [line for line in block.group(1).splitlines() if line.strip()]


def test_the_first_screen_has_exactly_two_setup_commands():
    demo, tests = setup_commands()
    assert demo.endswith("egtr demo") and "pip install torch==2.13.0" in demo
    assert tests.endswith("python -m pytest -q") and "pip install torch==2.13.0" in tests


def stub(folder: Path, name: str, body: str) -> None:
    path = folder / name
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


@pytest.mark.parametrize(("uid", "expected"), [("0", "apt-get"), ("1000", "sudo apt-get")])
def test_chromium_is_installed_with_an_updated_index_as_root_and_with_sudo(tmp_path, uid, expected):
    browser_step = setup_commands()[1].split(VENV_STEP)[0]
    bin_dir, log = tmp_path / "bin", tmp_path / "calls.log"
    bin_dir.mkdir()
    stub(bin_dir, "id", f'[ "$1" = "-u" ] && echo {uid}')
    stub(bin_dir, "apt-get", f'echo "apt-get $*" >> {log}')
    stub(bin_dir, "sudo", f'echo -n "sudo " >> {log}; "$@"')
    for tool in ("sh", "echo"):  # what the stubs themselves need, without a chromium on the PATH
        found = subprocess.run(["bash", "-c", f"command -v {tool}"], capture_output=True, text=True)
        if found.stdout.strip().startswith("/"):
            os.symlink(found.stdout.strip(), bin_dir / tool)
    result = subprocess.run(
        ["/bin/bash", "-c", browser_step], env={"PATH": str(bin_dir)}, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert log.read_text().splitlines() == [
        f"{expected} update -q",
        f"{expected} install -y -q chromium",
    ]


def test_nothing_is_installed_when_chromium_is_there(tmp_path):
    browser_step = setup_commands()[1].split(VENV_STEP)[0]
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    stub(bin_dir, "chromium", "true")
    stub(bin_dir, "apt-get", "exit 7")
    result = subprocess.run(["/bin/bash", "-c", browser_step], env={"PATH": str(bin_dir)})
    assert result.returncode == 0
