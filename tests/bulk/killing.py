"""Work killed with SIGKILL between two file-system writes.

`call_killed(work, at)` forks the test process; the child counts every call that changes the file system
for good (os.fsync, os.replace, os.rename, os.unlink, os.remove), SIGKILLs itself just before call number
`at`, and otherwise runs `work()` to the end. A kill there is what a power cut or `kill -9` between two writes
does: the write in progress never happens, nor anything after it. `run_killed` does it to `egtr predict`.
Forking keeps each run cheap (no new interpreter; torch, Lightning and pyarrow already imported).
"""

from __future__ import annotations

import os
import signal
import traceback
from collections.abc import Callable
from pathlib import Path

import pyarrow.parquet  # noqa: F401

import egtr.bulk.run
import egtr.engine.prediction  # noqa: F401
from egtr.cli import main

MUTATIONS = ("fsync", "replace", "rename", "unlink", "remove")


def call_killed(work: Callable[[], int], at: int | None, count_file: Path | None = None) -> int | None:
    """Run `work()` in a forked child killed before its `at`-th write (None: never). Returns work's result
    (an exit code), or None when the child was killed; with `count_file`, a child that ends writes its number
    of writes there."""
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
            code = work()
            for name, original in originals.items():
                setattr(os, name, original)
            if count_file is not None:
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


def run_killed(arguments: list, at: int | None, count_file: Path | None = None) -> int | None:
    """`egtr predict ARGUMENTS` killed before its `at`-th write (see `call_killed`)."""
    return call_killed(lambda: main(["predict", *map(str, arguments)]), at, count_file)
