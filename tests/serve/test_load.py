"""A bounded load test: `egtr serve` in its own process on 127.0.0.1, 200 requests from 16 clients.

Every answer must be 200 and the graph `egtr predict` writes for the same file: same objects (labels
and names per decoder query), same triplets (pair, predicate), scores and boxes equal up to float
rounding (batched forward passes round differently from single ones), best first. The server's resident
memory may grow by at most RSS_GROWTH_LIMIT between the end of a 64-request warm-up and the end of the
run; a server keeping each request's decoded 640 x 480 image (0.9 MB) would grow by about 180 MB.
"""

import json

import numpy as np
import pytest
import torch
from benchmarks.serve_load import ServerProcess, get_json, run_clients
from PIL import Image

from egtr import EGTRConfig
from egtr.checkpoints import save_model
from egtr.cli import main
from egtr.models.egtr import EGTR

REQUESTS, CLIENTS, WARM_UP = 200, 16, 64
RSS_GROWTH_LIMIT = 48 * 2**20
SIZE = ["--size", "48", "--max-size", "64"]
TOP_K = 200  # all 132 pairs of 12 queries: no cut-off between near-equal scores


def photo_like(path, seed: int, height: int = 480, width: int = 640):
    """A JPEG with smooth structure plus noise, like a photo rather than pure noise."""
    rng = np.random.default_rng(seed)
    rows, columns = np.mgrid[0:height, 0:width]
    phase = rng.uniform(0, 2 * np.pi, 3)
    base = np.stack([np.sin(rows / 37 + columns / 53 + p) for p in phase], axis=-1) * 80 + 128
    Image.fromarray(np.clip(base + rng.normal(0, 12, base.shape), 0, 255).astype(np.uint8)).save(
        path, quality=90
    )
    return path


def by_query(graph: dict) -> tuple[dict, dict]:
    """({query: object}, {(subject query, object query): triplet}) of a graph's JSON."""
    objects = {entry["query"]: entry for entry in graph["objects"]}
    queries = [entry["query"] for entry in graph["objects"]]
    triplets = {(queries[t["subject"]], queries[t["object"]]): t for t in graph["triplets"]}
    return objects, triplets


def assert_same_graph(answer: dict, expected: dict) -> None:
    assert {key: answer[key] for key in ("image", "width", "height")} == {
        key: expected[key] for key in ("image", "width", "height")
    }
    objects, triplets = by_query(answer)
    expected_objects, expected_triplets = by_query(expected)
    assert objects.keys() == expected_objects.keys() and triplets.keys() == expected_triplets.keys()
    for query, entry in expected_objects.items():
        assert (objects[query]["label"], objects[query]["name"]) == (entry["label"], entry["name"])
        np.testing.assert_allclose(objects[query]["score"], entry["score"], rtol=1e-4)
        np.testing.assert_allclose(objects[query]["box"], entry["box"], rtol=1e-4, atol=1e-3)
    for pair, entry in expected_triplets.items():
        assert triplets[pair]["predicate_name"] == entry["predicate_name"]
        np.testing.assert_allclose(triplets[pair]["score"], entry["score"], rtol=1e-4)
    scores = [t["score"] for t in answer["triplets"]]
    assert scores == sorted(scores, reverse=True)


@pytest.mark.slow
def test_200_requests_from_16_clients_all_right_and_memory_flat(tmp_path, monkeypatch):
    torch.manual_seed(0)
    checkpoint = save_model(EGTR(EGTRConfig.small(num_queries=12)).eval(), tmp_path / "small.safetensors")
    monkeypatch.chdir(tmp_path)  # `egtr predict` below names each image by its file name, as uploads do
    names = [photo_like(tmp_path / f"photo{seed}.jpg", seed).name for seed in range(4)]
    names.append(photo_like(tmp_path / "tall.jpg", 9, height=640, width=360).name)  # another size: alone
    code = main(
        [
            "predict",
            *names,
            "--checkpoint",
            str(checkpoint),
            "--out",
            "expected",
            "--top-k",
            str(TOP_K),
            "--no-progress",
            *SIZE,
        ]
    )
    assert code == 0
    expected = [json.loads((tmp_path / "expected" / name).with_suffix(".json").read_text()) for name in names]
    bodies = [(tmp_path / name).read_bytes() for name in names]
    arguments = ["--checkpoint", str(checkpoint), "--max-batch", "8", "--log-level", "warning", *SIZE]

    with ServerProcess(arguments) as server:
        warm = run_clients(server.url, bodies, CLIENTS, WARM_UP, f"top_k={TOP_K}")
        assert {answer.status for answer in warm.answers} == {200}
        before = server.rss_bytes()
        result = run_clients(server.url, bodies, CLIENTS, REQUESTS, f"top_k={TOP_K}", names)
        after = server.rss_bytes()
        health = get_json(f"{server.url}/healthz")

    assert [answer.status for answer in result.answers] == [200] * REQUESTS
    for index, answer in enumerate(result.answers):
        assert_same_graph(answer.body, expected[index % len(names)])
    assert after - before < RSS_GROWTH_LIMIT, f"RSS grew by {(after - before) / 2**20:.1f} MiB"
    assert health["images"] == WARM_UP + REQUESTS and health["failed_batches"] == 0
    assert any(int(size) > 1 for size in health["batch_sizes"])  # concurrent requests were batched
