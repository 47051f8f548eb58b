"""Runs of `egtr predict` killed with SIGKILL between two file-system writes.

`run_killed(arguments, at)` forks the test process; the child counts every call that changes the file
system for good (os.fsync, os.replace, os.rename, os.unlink, os.remove), SIGKILLs itself just before call
number `at`, and otherwise runs `egtr predict` to the end. A kill there is what a power cut or `kill -9`
between two writes does to a run: the write in progress never happens, nothing after it either. Forking
keeps each run cheap (no new interpreter, torch already imported).
"""

from __future__ import annotations

import os
import signal
import traceback
from pathlib import Path

import pyarrow.parquet  # noqa: F401

import egtr.bulk.run
import egtr.engine.prediction  # noqa: F401
from egtr.cli import main

MUTATIONS = ("fsync", "replace", "rename", "unlink", "remove")


def run_killed(arguments: list, at: int | None, count_file: Path | None = None) -> int | None:
    """Run `egtr predict ARGUMENTS` in a forked child killed before its `at`-th write (None: never).
    Returns the exit code, or None when the child was killed; with `count_file`, the child writes its number
    of writes there when it ends normally."""
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 3
        try:
            writes = [0]

            def counted(original):
                def wrapper(*args, **kwargs):
                    writes[0] += 1
                    if writes[0] == at:
                        os.kill(os.getpid(), signal.SIGKILL)
                    return original(*args, **kwargs)

                return wrapper

            originals = {name: getattr(os, name) for name in MUTATIONS}
            for name, original in originals.items():
                setattr(os, name, counted(original))
            code = main(["predict", *map(str, arguments)])
            if count_file is not None:
                for name, original in originals.items():
                    setattr(os, name, original)
                count_file.write_text(str(writes[0]))
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        assert os.WTERMSIG(status) == signal.SIGKILL
        return None
    return os.WEXITSTATUS(status)
