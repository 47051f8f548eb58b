"""`egtr serve --workers 2`: two model processes, each with its own batcher, answer on one port."""

from __future__ import annotations

import time

import torch
from benchmarks.serve_load import ServerProcess, get_json, run_clients

from egtr import EGTRConfig
from egtr.checkpoints import save_model
from egtr.models.egtr import EGTR

from .conftest import photo


def test_two_workers_share_the_port_and_answer_alike(tmp_path):
    torch.manual_seed(0)
    checkpoint = save_model(EGTR(EGTRConfig.small(num_queries=12)).eval(), tmp_path / "small.safetensors")
    arguments = ["--checkpoint", str(checkpoint), "--workers", "2", "--size", "48", "--max-size", "64"]
    with ServerProcess([*arguments, "--log-level", "warning"]) as server:
        workers, deadline = {}, time.monotonic() + 120
        while len(workers) < 2 and time.monotonic() < deadline:  # each request on a new connection
            health = get_json(f"{server.url}/healthz")
            workers[health["worker"]] = health["pid"]
            time.sleep(0.05)
        assert sorted(workers) == [0, 1] and len(set(workers.values())) == 2
        assert get_json(f"{server.url}/v1/model")["workers"] == 2
        # one at a time: every answer is a batch of one, whichever worker gives it, so all are equal
        result = run_clients(server.url, [photo(64, 48)], clients=1, requests=24)
        served = {}
        while len(served) < 2:
            health = get_json(f"{server.url}/healthz")
            served[health["worker"]] = health["images"]
    assert [answer.status for answer in result.answers] == [200] * 24
    assert all(answer.body == result.answers[0].body for answer in result.answers)
    assert sum(served.values()) == 24 and server.process.returncode is not None
