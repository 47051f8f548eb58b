"""Progress on stderr: rich on a terminal, a few plain lines otherwise (logs, CI), with the rate and an ETA.

`track(items, total, description)` wraps an iterable; `Progress` is the same display for a caller that
counts finished work itself (`advance(count)`), e.g. results arriving from a loop it does not own.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from typing import TypeVar

Item = TypeVar("Item")
PLAIN_UPDATES = 10  # lines printed over a whole run when not on a terminal
PLAIN_SECONDS = 60.0  # ... and at least one line per minute on long runs


class Progress:
    """`done`/`total` items on stderr with items/s and the time left (nothing when not `enabled`)."""

    def __init__(self, total: int, description: str, enabled: bool = True) -> None:
        self.total, self.description, self.done = total, description, 0
        self.started = self.last_line = time.perf_counter()
        self.enabled, self._every = enabled, max(1, total // PLAIN_UPDATES)
        self._rich = None
        if enabled and sys.stderr.isatty():
            self._rich = _rich_progress()
            self._rich.start()
            self._task = self._rich.add_task(description, total=total)

    def advance(self, count: int = 1) -> None:
        before, self.done = self.done, self.done + count
        if not self.enabled or count == 0:
            return
        if self._rich is not None:
            self._rich.advance(self._task, count)
            return
        now = time.perf_counter()
        crossed = self.done // self._every > before // self._every or self.done == self.total
        if crossed or now - self.last_line >= PLAIN_SECONDS:
            self.last_line = now
            print(self.line(now), file=sys.stderr, flush=True)

    def line(self, now: float | None = None) -> str:
        """'description: done/total (rate/s, ETA h:mm:ss)'."""
        seconds = max((now or time.perf_counter()) - self.started, 1e-9)
        rate = self.done / seconds
        left = (self.total - self.done) / rate if rate > 0 else None
        eta = "unknown" if left is None else _clock(left)
        return f"{self.description}: {self.done}/{self.total} ({rate:.2f}/s, ETA {eta})"

    def close(self) -> None:
        if self._rich is not None:
            self._rich.stop()
            self._rich = None

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def track(items: Iterable[Item], total: int, description: str, enabled: bool = True) -> Iterator[Item]:
    """Yield `items`, showing progress on stderr (nothing when not `enabled`)."""
    with Progress(total, description, enabled) as progress:
        for item in items:
            yield item
            progress.advance()


def _clock(seconds: float) -> str:
    minutes, second = divmod(round(seconds), 60)
    hours, minute = divmod(minutes, 60)
    return f"{hours}:{minute:02d}:{second:02d}"


def _rich_progress():
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        ProgressColumn,
        TextColumn,
        TimeRemainingColumn,
    )
    from rich.text import Text

    class Rate(ProgressColumn):
        def render(self, task) -> Text:
            return Text(f"{task.speed:.2f}/s" if task.speed else "")

    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        Rate(),
        TimeRemainingColumn(),
    )
    return Progress(*columns, console=Console(stderr=True), transient=False)
