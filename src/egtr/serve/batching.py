"""Gathering concurrent requests into batches for the one thread that runs the model.

A request announces itself when it arrives (`arrive`), before its image is decoded, and `submit`s the
prepared image once it is (or `leave`s when its image was bad). The model thread takes the oldest waiting
job and, while the batch is not full and more requests are on their way (arrived, not yet submitted),
waits up to `wait_s` for them: a lone request runs at once, a crowd fills batches. The jobs taken are
grouped by their preprocessed size: equal sizes run as one batch (exact, no padding), each other size
on its own. Each answer (a SceneGraph, or the exception) goes to the job's Future; a job whose client
gave up (cancelled Future) is dropped before it runs.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field

from egtr.inference.predictor import PreparedImage, Selection
from egtr.inference.scene_graph import SceneGraph

RunBatch = Callable[[Sequence[PreparedImage], Sequence[Selection]], list[SceneGraph]]


class ServerBusy(Exception):
    """The queue is full or the server is stopping: the request is refused before any work."""


@dataclass
class Job:
    prepared: PreparedImage
    selection: Selection
    future: Future = field(default_factory=Future)


@dataclass
class BatchStats:
    images: int = 0  # images answered
    batches: int = 0  # forward passes
    failed_batches: int = 0
    sizes: Counter = field(default_factory=Counter)  # batch size -> number of forward passes

    def as_dict(self) -> dict:
        return {
            "images": self.images,
            "batches": self.batches,
            "failed_batches": self.failed_batches,
            "batch_sizes": {str(size): count for size, count in sorted(self.sizes.items())},
        }


def same_size_groups(jobs: Sequence[Job], max_batch: int) -> list[list[Job]]:
    """Jobs grouped by pixel_values shape (first appearance order), each group cut to `max_batch`."""
    groups: dict[tuple, list[Job]] = {}
    for job in jobs:
        groups.setdefault(tuple(job.prepared.pixel_values.shape), []).append(job)
    return [group[i : i + max_batch] for group in groups.values() for i in range(0, len(group), max_batch)]


class Batcher:
    """Runs `run(images, selections)` on batches of submitted jobs in a background thread."""

    def __init__(self, run: RunBatch, max_batch: int = 8, wait_s: float = 0.005, max_queue: int = 64) -> None:
        if max_batch < 1 or max_queue < 1 or wait_s < 0:
            raise ValueError("max_batch and max_queue must be >= 1 and wait_s >= 0")
        self.run, self.max_batch, self.wait_s, self.max_queue = run, max_batch, wait_s, max_queue
        self.stats = BatchStats()
        self._condition = threading.Condition()
        self._jobs: deque[Job] = deque()
        self._arriving = 0
        self._stopping = False
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------------------- request side
    def arrive(self) -> None:
        """Announce a request; raises ServerBusy when `max_queue` requests are already in."""
        with self._condition:
            if self._stopping:
                raise ServerBusy("the server is shutting down")
            waiting = self._arriving + len(self._jobs)
            if waiting >= self.max_queue:
                raise ServerBusy(
                    f"server busy: {waiting} requests are waiting (limit {self.max_queue}); retry"
                )
            self._arriving += 1

    def leave(self) -> None:
        """An announced request that will not submit (its upload was bad)."""
        with self._condition:
            self._arriving -= 1
            self._condition.notify_all()

    def submit(self, prepared: PreparedImage, selection: Selection) -> Future:
        """Queue an announced request's image; its Future gets the SceneGraph (or the error)."""
        job = Job(prepared, selection)
        with self._condition:
            self._arriving -= 1
            if self._stopping:
                job.future.set_exception(ServerBusy("the server is shutting down"))
            else:
                self._jobs.append(job)
            self._condition.notify_all()
        return job.future

    def report(self) -> dict:
        """Requests on their way and waiting, and what has been served."""
        with self._condition:
            return {"arriving": self._arriving, "waiting": len(self._jobs), **self.stats.as_dict()}

    # ------------------------------------------------------------------------------- model side
    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="egtr-model", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Finish the batch in progress, refuse the waiting jobs, end the thread."""
        with self._condition:
            self._stopping = True
            left, self._jobs = list(self._jobs), deque()
            self._condition.notify_all()
        for job in left:
            if job.future.set_running_or_notify_cancel():
                job.future.set_exception(ServerBusy("the server is shutting down"))
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _take(self) -> list[Job] | None:
        with self._condition:
            while not self._jobs and not self._stopping:
                self._condition.wait()
            if self._stopping:
                return None
            deadline = time.monotonic() + self.wait_s
            while len(self._jobs) < self.max_batch and self._arriving > 0 and not self._stopping:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._condition.wait(remaining)
            return [self._jobs.popleft() for _ in range(min(self.max_batch, len(self._jobs)))]

    def _loop(self) -> None:
        while (jobs := self._take()) is not None:
            live = [job for job in jobs if job.future.set_running_or_notify_cancel()]
            for group in same_size_groups(live, self.max_batch):
                self._run(group)

    def _run(self, group: list[Job]) -> None:
        try:
            graphs = self.run([job.prepared for job in group], [job.selection for job in group])
        except Exception as error:  # the model failed: every client of the batch hears why
            with self._condition:
                self.stats.failed_batches += 1
            for job in group:
                job.future.set_exception(error)
            return
        with self._condition:
            self.stats.batches += 1
            self.stats.images += len(group)
            self.stats.sizes[len(group)] += 1
        for job, graph in zip(group, graphs):
            job.future.set_result(graph)
