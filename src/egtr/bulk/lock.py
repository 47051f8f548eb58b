"""One run at a time per output folder: a POSIX record lock on DIR/.lock.

The first process of a run takes the lock exclusively while it prepares the folder (overwrite, checks,
clean-up) and is refused when any process holds it: another run, or a process of a killed run still
finishing. Then it and every other process of the run hold it shared until their writing is done. The
kernel drops a process's lock when it exits, however it dies, so a killed run never leaves a stale lock.
Record locks are per process (forked children do not inherit them) and work on NFS where lockd runs; where
the file system refuses locks the run goes on unlocked, with a note.
"""

from __future__ import annotations

import errno
import os
import sys
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: no record locks; one run per folder is then up to the user
    fcntl = None

LOCK_FILE = ".lock"
BUSY = (errno.EACCES, errno.EAGAIN)


class FolderInUse(RuntimeError):
    """Another process writes to the folder."""


class FolderLock:
    def __init__(self, folder: Path) -> None:
        self.path = Path(folder) / LOCK_FILE
        self.handle: int | None = None

    def exclusive(self) -> None:
        """Take the lock alone, at once; FolderInUse when any other process holds it."""
        self._lock(fcntl.LOCK_EX | fcntl.LOCK_NB if fcntl else 0)

    def shared(self) -> None:
        """Hold the lock shared (turning an exclusive lock shared), waiting while another process holds it
        exclusively."""
        self._lock(fcntl.LOCK_SH if fcntl else 0)

    def _lock(self, operation: int) -> None:
        if fcntl is None or self.handle == -1:
            return
        if self.handle is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.handle = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.lockf(self.handle, operation)
        except OSError as error:
            if error.errno in BUSY:
                raise FolderInUse(
                    f"{self.path.parent} is in use by another egtr predict (or a process of a killed run is "
                    "still finishing): wait for it, or choose another --out"
                ) from error
            print(
                f"note: {self.path}: the file system refuses locks ({error}); going on unlocked",
                file=sys.stderr,
            )
            os.close(self.handle)
            self.handle = -1

    def release(self) -> None:
        if self.handle is not None and self.handle >= 0:
            os.close(self.handle)  # closing drops the process's record locks on the file
        self.handle = None
