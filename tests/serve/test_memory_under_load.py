"""The memory bound, on `egtr serve` in its own process with the default limits: 48 concurrent uploads of
19 MB, then 48 of images just below the pixel limit. The server's peak resident memory may grow (from
its size after a warm-up of full batches) by at most the bound it states in `GET /v1/model`, which is at
most 600 MB on the default limits; every upload is answered, and the server goes on answering after.

`--timeout 300` (not a memory limit): the 48 large images decode one after another within the decoded-
image budget, which on a loaded 2-core machine takes longer than the default 60 s request timeout.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from benchmarks.serve_load import ServerProcess, get_json, loopback, post_image, run_clients
from PIL import Image

from egtr import EGTRConfig
from egtr.checkpoints import save_model
from egtr.models.egtr import EGTR

from .conftest import photo

SIZE = ["--size", "48", "--max-size", "64"]
DEFAULT_BOUND_LIMIT = 600_000_000


def noise_png(side: int = 2516) -> bytes:
    """An uncompressed PNG of random pixels: 19 MB."""
    pixels = np.random.default_rng(0).integers(0, 256, (side, side, 3), dtype=np.uint8)
    stream = io.BytesIO()
    Image.fromarray(pixels).save(stream, format="PNG", compress_level=0)
    return stream.getvalue()


def flat(mode: str, format: str, width: int = 7300, height: int = 5470) -> bytes:
    """A flat image of width x height (39.9 million pixels: the limit is 40 million), a few hundred kB."""
    stream = io.BytesIO()
    Image.new(mode, (width, height), 128 if mode == "L" else (120, 130, 140)).save(stream, format=format)
    return stream.getvalue()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("memory")
    checkpoint = save_model(EGTR(EGTRConfig.small(num_queries=12)).eval(), folder / "small.safetensors")
    arguments = ["--checkpoint", str(checkpoint), "--log-level", "warning", "--timeout", "300", *SIZE]
    with ServerProcess(arguments) as live:
        warm = run_clients(live.url, [photo(64, 48, seed) for seed in range(8)], clients=8, requests=32)
        assert {answer.status for answer in warm.answers} == {200}
        yield live


def test_the_bound_on_the_default_limits_is_at_most_600_mb(server):
    memory = get_json(f"{server.url}/v1/model")["memory"]
    assert memory["bytes"] == sum(memory["terms"].values()) <= DEFAULT_BOUND_LIMIT
    assert set(memory["terms"]) == {"bodies", "connections", "decoded_images"}


@pytest.mark.parametrize(
    "bodies",
    [
        pytest.param(lambda: [noise_png()], id="48x19MB"),
        pytest.param(lambda: [flat("RGB", "JPEG"), flat("L", "PNG")], id="48x40MP"),
    ],
)
def test_48_concurrent_uploads_stay_within_the_stated_bound(server, bodies):
    bodies = bodies()
    bound = get_json(f"{server.url}/v1/model")["memory"]["bytes"]
    before = server.rss_bytes()
    server.reset_peak()
    sources = [loopback(index) for index in range(4)]  # 12 connections each: within the per-client limit
    result = run_clients(server.url, bodies, clients=48, requests=48, sources=sources)
    growth = server.peak_rss_bytes() - before
    assert [answer.status for answer in result.answers] == [200] * 48, {
        a.status: a.body for a in result.answers
    }
    assert growth <= bound, f"resident memory grew by {growth / 2**20:.0f} MiB, above {bound / 2**20:.0f} MiB"
    print(f"peak growth {growth / 2**20:.0f} MiB (bound {bound / 2**20:.0f} MiB)")
    health = get_json(f"{server.url}/healthz")
    assert health["upload_bytes_in_flight"] == health["decoded_bytes_in_flight"] == 0
    assert post_image(server.url, photo(64, 48)).status == 200
