"""A progress bar over an iterable: rich on a terminal, a few plain lines otherwise (logs, CI)."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from typing import TypeVar

Item = TypeVar("Item")
PLAIN_UPDATES = 10  # lines printed over a whole run when not on a terminal


def track(items: Iterable[Item], total: int, description: str, enabled: bool = True) -> Iterator[Item]:
    """Yield `items`, showing progress on stderr (nothing when not `enabled`)."""
    if not enabled:
        yield from items
    elif sys.stderr.isatty():
        yield from _rich(items, total, description)
    else:
        yield from _plain(items, total, description)


def _rich(items: Iterable[Item], total: int, description: str) -> Iterator[Item]:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True), transient=False) as progress:
        task = progress.add_task(description, total=total)
        for item in items:
            yield item
            progress.advance(task)


def _plain(items: Iterable[Item], total: int, description: str) -> Iterator[Item]:
    every = max(1, total // PLAIN_UPDATES)
    started = time.perf_counter()
    for done, item in enumerate(items, start=1):
        yield item
        if done % every == 0 or done == total:
            rate = done / max(time.perf_counter() - started, 1e-9)
            print(f"{description}: {done}/{total} ({rate:.2f}/s)", file=sys.stderr, flush=True)
