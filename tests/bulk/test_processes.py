"""`--devices 2` on the CPU (two processes, gloo): the same results as one process, each image predicted by
one process only; a rank killed part-way resumes; exported models run as independent CPU processes too."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from tests.bulk.conftest import (
    FAST,
    arguments,
    assert_same_results,
    check_completed,
    egtr_process,
    read_results,
    summary,
)
from tests.bulk.killing import run_killed

TWO = ["--devices", "2"]


def run_to_the_end(command: list, timeout: float = 300) -> int:
    return egtr_process(["predict", *command]).wait(timeout=timeout)


def test_two_processes_give_the_results_of_one(models, collection, uninterrupted, tmp_path):
    out = tmp_path / "out"
    assert run_to_the_end([*arguments(collection, models[0], out, "jsonl"), *TWO]) == 1
    check_completed(out, collection, uninterrupted["jsonl"])
    finished = summary(out)
    assert finished["processes"] == 2 and finished["done_before"] == 0
    by_rank = {0: 0, 1: 0}
    for shard in (out / "shards").iterdir():
        by_rank[int(shard.name[1:6])] += len(shard.read_text().splitlines())
    assert by_rank == {0: 30, 1: 30}  # 62 found, the 2 corrupt ones among process 0's: 31 + 31 - 2


def child_with_rank(parent: int, rank: int) -> int | None:
    """The pid of the process Lightning started for LOCAL_RANK `rank` (a child of `parent`)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent_id = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            environment = (entry / "environ").read_bytes().split(b"\0")
        except (OSError, IndexError, ValueError):
            continue
        if parent_id == parent and f"LOCAL_RANK={rank}".encode() in environment:
            return int(entry.name)
    return None


def test_a_run_whose_second_process_is_killed_resumes(models, collection, uninterrupted, tmp_path):
    """Process 1 is SIGKILLed once it has committed a shard, then the rest of the run (as Lightning's
    launcher would); the run resumes, here in one process (the split is made anew at every start)."""
    out = tmp_path / "out"
    command = [*arguments(collection, models[0], out, "jsonl"), "--shard-size", "4"]
    process = egtr_process(["predict", *command, *TWO])
    deadline = time.time() + 180
    while not list((out / "shards").glob("r00001-*")) and process.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    rank1 = child_with_rank(process.pid, 1)
    assert rank1 is not None and process.poll() is None, "the run ended before it could be killed"
    os.kill(rank1, signal.SIGKILL)
    time.sleep(0.1)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert run_killed(command, None) == 1
    assert summary(out)["done_before"] > 0
    check_completed(out, collection, uninterrupted["jsonl"])


def test_an_exported_model_runs_in_two_cpu_processes(small_export, collection, tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    command = ["--backend", "onnxruntime", "--checkpoint", small_export.folder]
    part = collection / "part0"  # 20 images: the run's start-up is what takes time here
    assert run_killed([part, "--out", one, "--parquet", *command, *FAST], None) == 0
    assert run_to_the_end([part, "--out", two, "--parquet", *command, *FAST, *TWO]) == 0
    assert summary(two)["processes"] == 2 and summary(two)["settings"]["backend"] == "onnxruntime"
    assert_same_results(read_results(two), read_results(one))
