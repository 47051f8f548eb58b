"""One `egtr predict` run over a collection into DIR: resumable, in one process or many.

    run = CollectionRun(predictor, collection, OutputOptions(out, layout="parquet"), checkpoint)
    run.prepare()                                   # every process, before the launch
    rank = run_prediction(predictor, run, processes)  # egtr.engine.prediction: Lightning's predict loop
    run.summary                                     # on the first process: what summary.json holds

`prepare`: the first process locks DIR (lock.py), starts afresh with `overwrite`, refuses another model or
other settings (run_record.py; a new DIR gets run.json) and removes what a killed run left; the others only
check run.json. `assign` (each process, once the process group is up): the images no committed output
holds, in collection order, are split between the processes by position (process r of W takes positions r,
r + W, ...: disjoint, together all, none twice, balanced); the processes check that they all planned the
same work. `write` (the model's thread) hands finished results to a writer thread, which commits them: per
image (per_image.py) or in shards of `shard_size` images (index.py). `close` commits the last, part-full
shard; `finish` (first process) merges the index and makes the summary. Ctrl-C or an error commits what is
finished (`interrupt`); a kill loses at most each process's part-full shard, and the next run predicts it.

An unreadable image is reported, counted and named in the summary, never committed: every run tries it
again (a file still being copied gets its graph later), so the summary of the run that completes a
collection names every unreadable image of it.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from egtr.bulk.index import ENTRIES, INDEX_FILE, SHARDS, ShardIndex
from egtr.bulk.lock import FolderLock
from egtr.bulk.per_image import EXPLAIN_EXTRA, leftovers, saved_outputs, write_image
from egtr.bulk.run_record import RUN_FILE, check_run, read_run, run_record, write_run
from egtr.bulk.shard_formats import DEFAULT_SHARD_SIZE, SHARD_FORMATS, check_available
from egtr.bulk.sources import Collection
from egtr.engine.prediction import first_process
from egtr.inference.output import OutputNames
from egtr.inference.predictor import PredictionResult, SceneGraphPredictor
from egtr.inference.progress import Progress

LAYOUTS = ("json", "jsonl", "parquet")  # per-image JSON files (default), JSON Lines shards, Parquet shards
SUMMARY_FILE = "summary.json"
RESERVED = ("summary", "run", "index")  # top-level names that are no image's output
MAX_WAITING_BATCHES = 4  # batches of results the writer may lag behind the model


@dataclass(frozen=True)
class OutputOptions:
    out: Path
    layout: str = "json"  # one of LAYOUTS
    shard_size: int = DEFAULT_SHARD_SIZE  # images per shard (jsonl, parquet)
    overwrite: bool = False  # start afresh: remove what DIR holds
    drawing: dict | None = None  # per-image layout: {"draw_edges", "graph_layout"} to draw each graph
    explain: bool = False  # per-image layout: draw the predictor's explanation of each image
    progress: bool = True

    def __post_init__(self) -> None:
        if self.layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {LAYOUTS}, got {self.layout!r}")
        if self.shard_size < 1:
            raise ValueError(f"--shard-size must be at least 1, got {self.shard_size}")
        if self.layout != "json" and (self.drawing is not None or self.explain):
            raise ValueError(
                "--draw and --explain write files per image: use the per-image layout (no --jsonl or "
                "--parquet)"
            )


class CollectionRun:
    """The `egtr.engine.prediction.PredictionJob` of labelling `collection` into `options.out` (see the
    module docstring)."""

    def __init__(
        self,
        predictor: SceneGraphPredictor,
        collection: Collection,
        options: OutputOptions,
        checkpoint: str | Path,
    ) -> None:
        self.predictor, self.collection, self.options = predictor, collection, options
        self.out = Path(options.out)
        if options.layout != "json":
            check_available(options.layout)
        self.index = ShardIndex(self.out, SHARD_FORMATS[options.layout]) if options.layout != "json" else None
        self.record = run_record(predictor, checkpoint, options.layout, options.drawing)
        self.lock = FolderLock(self.out)
        self.names = OutputNames(reserved=RESERVED, extras=(EXPLAIN_EXTRA,))  # per-image names (and videos')
        self.first = first_process()
        self.summary: dict | None = None
        self._unreadable: list[dict] = []
        self._done = 0
        self._pending: deque[Future] = deque()
        self._writer: ThreadPoolExecutor | None = None
        self._progress: Progress | None = None

    # ------------------------------------------------------------------------------------ before the launch
    def prepare(self) -> None:
        """The first process: lock DIR, start afresh with `overwrite`, check or write run.json, remove a
        killed run's leftovers. The others: check run.json only (ValueError naming every difference)."""
        if not self.first:  # (with --overwrite the first process may not have cleared DIR yet: torchrun)
            if not self.options.overwrite:
                check_run(self.out, self.record)
            return
        self.out.mkdir(parents=True, exist_ok=True)
        self.lock.exclusive()
        stored = read_run(self.out)
        if self.options.overwrite:
            self._clear()
            stored = None
        if stored is None:
            if self._holds_results():
                raise ValueError(
                    f"{self.out} holds results but no {RUN_FILE} (an older egtr predict wrote them): pass "
                    "--overwrite to replace them, or choose another --out"
                )
            write_run(self.out, self.record)
        else:
            check_run(self.out, self.record)
        if self.index is not None:
            self.index.clean()
        else:
            for path in leftovers(self.out):
                path.unlink()

    def _holds_results(self) -> bool:
        ours = (self.out / name for name in (SHARDS, ENTRIES, INDEX_FILE))
        return any(path.exists() for path in ours) or bool(saved_outputs(self.out, RESERVED)[0])

    def _clear(self) -> None:
        """Remove what egtr predict writes, and only that: run.json, summary.json, the shards and their
        index, every image's JSON with its drawings (other files in DIR stay)."""
        for name in (SHARDS, ENTRIES):
            if (self.out / name).is_dir():
                shutil.rmtree(self.out / name)
        for name in saved_outputs(self.out, RESERVED)[0].values():
            for suffix in (".json", ".png", f".{EXPLAIN_EXTRA}.png"):
                (self.out / f"{name}{suffix}").unlink(missing_ok=True)
        for name in (RUN_FILE, SUMMARY_FILE, INDEX_FILE):
            (self.out / name).unlink(missing_ok=True)

    # ------------------------------------------------------------------------------------ in each process
    def assign(self, rank: int, world_size: int, agree: Callable[[Any], bool]) -> list[str]:
        """This process's images (their keys), once the run's processes are up (see the module docstring)."""
        started = time.perf_counter()
        self.lock.shared()
        self.rank, self.world_size = rank, world_size
        images = self.collection.images
        if self.index is not None:
            committed = self.index.committed()
            done = {image for held in committed.values() for image in held}
            self.sequence = self.index.next_sequence(rank)
        else:
            saved, taken = saved_outputs(self.out, RESERVED)
            done = set(saved)
            for name in taken:
                self.names.reserve(name)
        self.committed = len(done)
        pending = [image for image in images if image.key not in done]
        self.done_before = len(images) - len(pending)
        claimed = (
            [str(self.names.claim(image.relative_name)) for image in pending] if self.index is None else []
        )
        what = [self.record["model"]["weights_sha256"], self.record["settings"]]  # not paths: machines differ
        plan = json.dumps([what, [image.key for image in pending], claimed]).encode("utf-8")
        self.resume_seconds = time.perf_counter() - started  # reading DIR and planning; not the waiting below
        if not agree(hashlib.sha256(plan).hexdigest()):
            raise ValueError(
                "the processes of this run do not see the same images, model or settings (each must see the "
                "same sources, output folder and checkpoint, e.g. on a shared file system)"
            )
        mine = pending[rank::world_size]
        self.output_names = claimed[rank::world_size]
        self.keys = [image.key for image in mine]
        if rank == 0:
            self._notes(len(images), len(pending))
            self._progress = Progress(len(mine), self._description(), self.options.progress)
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="egtr-write")
        self._buffer: list[dict] = []
        self.started = time.perf_counter()
        return self.keys

    def _description(self) -> str:
        if self.world_size == 1:
            return "predicting"
        return f"predicting (process 1 of {self.world_size}, its part)"

    def _notes(self, found: int, pending: int) -> None:
        if self.done_before:
            print(
                f"note: {self.out}: {self.done_before} of {found} images done before; predicting the other "
                f"{pending}",
                file=sys.stderr,
            )
        elif self.committed:
            print(
                f"note: {self.out} holds {self.committed} results, none of these sources' images: images are "
                "matched by their path as given (run from the same folder, with the same spelling)",
                file=sys.stderr,
            )

    def write(self, results: list[PredictionResult]) -> None:
        """Results of one batch (model thread): unreadable ones are reported, the others go to the writer."""
        finished = []
        for result in results:
            if result.error is not None:
                print(f"egtr predict: {result.source}: {result.error}", file=sys.stderr)
                self._unreadable.append({"image": result.source, "error": result.error})
            else:
                finished.append(result)
        if finished:
            self._submit(self._store, finished)
        if self._progress is not None:
            self._progress.advance(len(results))

    def _submit(self, work: Callable[..., None], *arguments: Any) -> None:
        self._pending.append(self._writer.submit(work, *arguments))
        while len(self._pending) > MAX_WAITING_BATCHES or (self._pending and self._pending[0].done()):
            self._pending.popleft().result()  # the writer's errors surface here

    def _store(self, results: list[PredictionResult]) -> None:
        """(writer thread) Commit per image, or add to the shard being filled and commit it when full."""
        for result in results:
            if self.index is None:
                name = self.output_names[result.index]
                write_image(self.out, name, result, self.options.drawing, self.options.explain)
                self._done += 1
                continue
            self._buffer.append(result.graph.to_dict())
            if len(self._buffer) == self.options.shard_size:
                self._commit()

    def _commit(self) -> None:
        """(writer thread) Commit the shard being filled."""
        if self._buffer:
            self.index.commit(f"r{self.rank:05d}-{self.sequence:06d}", self._buffer)
            self.sequence += 1
            self._done += len(self._buffer)
            self._buffer = []

    def _drain(self) -> None:
        """Commit everything finished, and stop the writer."""
        if self._writer is None:
            return
        self._submit(self._commit)
        while self._pending:
            self._pending.popleft().result()
        self._writer.shutdown()
        self._writer = None
        if self._progress is not None:
            self._progress.close()

    def close(self) -> dict:
        """Commit the last shard; this process's numbers."""
        self._drain()
        if not self.first:
            self.lock.release()
        return {
            "rank": self.rank,
            "assigned": len(self.keys),
            "done": self._done,
            "unreadable": self._unreadable,
            "seconds": time.perf_counter() - self.started,
        }

    def interrupt(self) -> None:
        """Ctrl-C or an error: commit what is finished (a second failure while doing so is not hidden)."""
        pending, self._pending = self._pending, deque()
        for future in pending:
            if not future.cancelled() and future.exception() is not None:
                return  # the writer itself failed: leave its state as it is
        self._drain()

    # ------------------------------------------------------------------------------------ first process
    def finish(self, numbers: list[dict]) -> None:
        """Merge the index and make the summary from every process's numbers."""
        shards = self.index.merge() if self.index is not None else None
        done_now = sum(part["done"] for part in numbers)
        seconds = max(part["seconds"] for part in numbers)
        unreadable = sorted(
            (entry for part in numbers for entry in part["unreadable"]), key=lambda e: e["image"]
        )
        predictor = self.predictor
        summary = {
            "found": len(self.collection.images),
            "done_now": done_now,
            "done_before": self.done_before,
            "unreadable": unreadable,
            "missing": self.collection.missing,
            "not_images": self.collection.skipped,
            "duplicates": self.collection.duplicates,
            "seconds": round(seconds, 3),
            "images_per_second": round(done_now / seconds, 3) if seconds > 0 and done_now else None,
            "resume_seconds": round(self.resume_seconds, 3),
            "processes": len(numbers),
            "layout": self.options.layout,
            "out": str(self.out),
            "committed": self.committed + done_now,
            "settings": {
                **self.record["settings"],
                **self.record["model"],
                "names": predictor.vocabulary.source,
                "device": str(predictor.device),
                "batch_size": predictor.batch_size,
                "workers": predictor.workers,
            },
        }
        if shards is not None:
            summary.update(shards=shards, shard_size=self.options.shard_size)
        self.summary = summary
        self.lock.release()
