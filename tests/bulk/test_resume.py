"""Killed with SIGKILL part-way, at random points, several times, and started again: a run ends with the
results of one uninterrupted run (same images, scores within 1e-5, none twice, corrupt files named)."""

from __future__ import annotations

import os
import shutil
import signal
import time

import numpy as np
import pytest
from tests.bulk.conftest import arguments, check_completed, egtr_process, summary
from tests.bulk.killing import call_killed, run_killed

KILLS = 3


@pytest.mark.parametrize("layout", ["json", "jsonl", "parquet"])
def test_runs_killed_between_any_two_writes_resume_to_the_uninterrupted_results(
    layout, models, collection, uninterrupted, tmp_path
):
    """Each attempt first counts the writes the next run would make (on a copy of the folder), then kills
    the run just before a write drawn at random among them."""
    out, probe, counted = tmp_path / "out", tmp_path / "probe", tmp_path / "writes"
    rng = np.random.default_rng(len(layout))
    kills = []
    for _ in range(KILLS):
        shutil.rmtree(probe, ignore_errors=True)
        if out.exists():
            shutil.copytree(out, probe)
        assert run_killed(arguments(collection, models[0], probe, layout), None, counted) == 1
        at = int(rng.integers(1, int(counted.read_text()) + 1))
        assert run_killed(arguments(collection, models[0], out, layout), at) is None
        kills.append(at)
    assert run_killed(arguments(collection, models[0], out, layout), None) == 1
    assert summary(out)["done_before"] > 0, kills
    check_completed(out, collection, uninterrupted[layout])


def test_a_command_killed_at_random_times_resumes_to_the_uninterrupted_results(
    models, collection, uninterrupted, tmp_path
):
    """The real command in its own process, SIGKILLed by the test at a random moment after a commit."""
    out = tmp_path / "out"
    rng = np.random.default_rng(7)
    command = arguments(collection, models[0], out, "parquet")
    killed = 0
    for _ in range(2):
        process = egtr_process(["predict", *command])
        deadline = time.time() + 120
        while (
            process.poll() is None and not list((out / "shards").glob("*.parquet")) and time.time() < deadline
        ):
            time.sleep(0.02)
        time.sleep(rng.uniform(0, 0.4))
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            killed += 1
        process.wait()
    assert killed >= 1
    resumed = egtr_process(["predict", *command])
    assert resumed.wait(timeout=300) == 1
    assert summary(out)["done_before"] > 0
    check_completed(out, collection, uninterrupted["parquet"])


def test_ctrl_c_commits_the_finished_part_of_the_shard_and_the_run_resumes(
    models, collection, uninterrupted, tmp_path, capfd
):
    """SIGINT once 10 results have arrived: with shards of 7, the first shard and the 3 or more images of
    the second that were finished are committed; exit code 2; the next run does the rest."""
    from egtr.bulk.run import CollectionRun
    from egtr.cli import main

    out = tmp_path / "out"
    command = ["predict", *map(str, arguments(collection, models[0], out, "jsonl"))]

    def interrupted() -> int:
        write, seen = CollectionRun.write, [0]

        def counting(self, results):
            write(self, results)
            seen[0] += sum(result.error is None for result in results)
            if seen[0] >= 10:
                os.kill(os.getpid(), signal.SIGINT)

        CollectionRun.write = counting
        # Python's own Ctrl-C handler, as in a terminal: a job started in the background by a
        # non-interactive shell (CI runners, nohup ... &) inherits SIGINT ignored, and Python keeps that
        signal.signal(signal.SIGINT, signal.default_int_handler)
        return main(command)

    assert call_killed(interrupted, None) == 2
    assert "egtr predict: interrupted" in capfd.readouterr().err
    held = sorted(len(shard.read_text().splitlines()) for shard in (out / "shards").iterdir())
    assert held[-1] == 7 and len(held) == 2 and 3 <= held[0] < 7
    assert run_killed(arguments(collection, models[0], out, "jsonl"), None) == 1
    assert summary(out)["done_before"] == sum(held)
    check_completed(out, collection, uninterrupted["jsonl"])
