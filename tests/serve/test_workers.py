"""`egtr serve --workers 2`: two model processes, each with its own batcher, answer on one port."""

from __future__ import annotations

import torch
from benchmarks.serve_load import ServerProcess, get_json, run_clients, worker_healths

from egtr import EGTRConfig
from egtr.checkpoints import save_model
from egtr.models.egtr import EGTR

from .conftest import photo


def test_two_workers_share_the_port_and_answer_alike(tmp_path):
    torch.manual_seed(0)
    checkpoint = save_model(EGTR(EGTRConfig.small(num_queries=12)).eval(), tmp_path / "small.safetensors")
    arguments = ["--checkpoint", str(checkpoint), "--workers", "2", "--size", "48", "--max-size", "64"]
    with ServerProcess([*arguments, "--log-level", "warning"]) as server:
        workers = worker_healths(server.url, 2)
        assert sorted(workers) == [0, 1] and len({health["pid"] for health in workers.values()}) == 2
        assert get_json(f"{server.url}/v1/model")["workers"] == 2
        # one at a time: every answer is a batch of one, whichever worker gives it, so all are equal
        result = run_clients(server.url, [photo(64, 48)], clients=1, requests=24)
        served = {worker: health["images"] for worker, health in worker_healths(server.url, 2).items()}
    assert [answer.status for answer in result.answers] == [200] * 24
    assert all(answer.body == result.answers[0].body for answer in result.answers)
    assert sum(served.values()) == 24 and server.process.returncode is not None
