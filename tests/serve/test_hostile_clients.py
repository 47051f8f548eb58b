"""Hostile clients against `egtr serve` in its own process, on real sockets, with the default limits.

- 150 clients that stall (50 after a complete request head with a 19 MB Content-Length, 50 in the middle
  of their head, 50 after 1 MB of their body), each from its own loopback address, hold 150 connections
  while a good client's request is answered 200 within 15 s: a stalled body holds no queue slot and only
  the bytes it sent;
- connections from one address beyond --max-connections-per-client are answered 429 and closed, and a
  client from another address is still served;
- `Host: attacker.example` is refused on a token-less server (DNS rebinding), and so is a cross-origin
  browser post;
- /docs loads Swagger UI from the server itself: the page names no outside URL (test_page.py renders it
  in a browser that records every request).
"""

from __future__ import annotations

import re
import socket
import time
import urllib.request
from contextlib import ExitStack

import pytest
import torch
from benchmarks.serve_load import ServerProcess, get_json, loopback, post_image

from egtr import EGTRConfig
from egtr.checkpoints import save_model
from egtr.models.egtr import EGTR

from .conftest import photo, until_closed

SIZE = ["--size", "48", "--max-size", "64"]
DECLARED = 19_000_000  # bytes a stalled body announces


def head(length: int, host: str = "127.0.0.1") -> bytes:
    return (
        f"POST /v1/scene-graph HTTP/1.1\r\nHost: {host}\r\nContent-Type: image/png\r\n"
        f"Content-Length: {length}\r\n\r\n"
    ).encode()


def open_connection(port: int, source: str, data: bytes = b"") -> socket.socket:
    connection = socket.create_connection(("127.0.0.1", port), timeout=30, source_address=(source, 0))
    if data:
        connection.sendall(data)
    return connection


def poll(condition, timeout_s: float = 60.0, what: str = "the server"):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"{what} did not get there within {timeout_s} s")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("hostile")
    checkpoint = save_model(EGTR(EGTRConfig.small(num_queries=12)).eval(), folder / "small.safetensors")
    with ServerProcess(["--checkpoint", str(checkpoint), "--log-level", "warning", *SIZE]) as live:
        yield live


def test_150_stalled_clients_do_not_keep_a_good_one_waiting(server):
    body, large = photo(64, 48), photo(400, 300)  # 360 kB: more than a full budget has left
    assert post_image(server.url, body).status == 200  # warm: the first forward pass is slower
    with ExitStack() as stack:
        stalled = []
        for index in range(150):
            kind = index % 3
            if kind == 0:  # the whole head, then nothing
                data = head(DECLARED)
            elif kind == 1:  # half a head
                data = head(DECLARED)[:40]
            else:  # the head and 1 MB of the body
                data = head(DECLARED) + b"\x89PNG\r\n\x1a\n" + bytes(1_000_000)
            stalled.append(stack.enter_context(open_connection(server.port, loopback(index), data)))

        def filled(health: dict) -> bool:  # 150 connections, and the stalled bodies' bytes fill the budget
            return (
                health["connections"] >= 151
                and health["bodies_arriving"] >= 100
                and health["bodies_waiting_for_budget"] > 0
            )

        def health_once_filled() -> dict | None:
            health = get_json(f"{server.url}/healthz")
            return health if filled(health) else None

        health = poll(health_once_filled, what="150 stalled connections filling the upload budget")
        started = time.monotonic()
        answer = post_image(server.url, large, timeout=15)
        elapsed = time.monotonic() - started
        assert answer.status == 200 and "triplets" in answer.body, answer.body
        assert elapsed < 15
        after = get_json(f"{server.url}/healthz")
    # the stalled bodies held only what they sent and no queue slot; the budget they filled was taken
    # back from those that had sent nothing for --max-stall
    assert health["upload_bytes_in_flight"] <= 50 * 1_100_000
    assert health["arriving"] == 0 and health["waiting"] == 0
    assert after["images"] == health["images"] + 1 and after["stalled_bodies_dropped"] >= 1


def test_connections_beyond_the_per_client_limit_are_refused_and_others_served(server):
    limit = get_json(f"{server.url}/v1/model")["limits"]["max_connections_per_client"]
    source = loopback(400)
    with ExitStack() as stack:
        held = [stack.enter_context(open_connection(server.port, source)) for _ in range(limit)]
        poll(lambda: get_json(f"{server.url}/healthz")["connections"] >= limit, what=f"{limit} connections")
        with open_connection(server.port, source) as extra:  # refused as it opens, before it sends
            refused = until_closed(extra).decode()
        assert refused.startswith("HTTP/1.1 429 Too Many Requests")
        assert f"connections are open from {source} (limit {limit} per client)" in refused
        assert post_image(server.url, photo(64, 48)).status == 200  # another address
        assert len(held) == limit
    refusals = get_json(f"{server.url}/healthz")["connections_refused"]
    assert refusals.get("per_client", 0) >= 1


def raw_request(server, request: bytes) -> str:
    with open_connection(server.port, "127.0.0.1", request) as connection:
        connection.shutdown(socket.SHUT_WR)
        return until_closed(connection).decode(errors="replace")


def test_a_foreign_host_is_refused_without_a_token(server):
    body = photo(64, 48)
    answer = raw_request(server, head(len(body), host="attacker.example") + body)
    assert answer.startswith("HTTP/1.1 400")
    assert "Host 'attacker.example' is not a name of this server" in answer
    for host in ("attacker.example:8000", "127.0.0.1.attacker.example", "[::2]:8000"):
        assert raw_request(server, f"GET /v1/model HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()).startswith(
            "HTTP/1.1 400"
        )
    for host in (f"127.0.0.1:{server.port}", f"localhost:{server.port}", f"[::1]:{server.port}"):
        answer = raw_request(
            server, f"GET /healthz HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode()
        )
        assert answer.startswith("HTTP/1.1 200"), host


def test_a_cross_origin_browser_post_is_refused(server):
    body = photo(64, 48)
    request = urllib.request.Request(
        f"{server.url}/v1/scene-graph", data=body, headers={"Origin": "https://attacker.example"}
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=30)
    assert refused.value.code == 403
    assert "cross-origin request from 'https://attacker.example' refused" in refused.value.read().decode()
    assert "access-control-allow-origin" not in {name.lower() for name in refused.value.headers}
    same = urllib.request.Request(f"{server.url}/v1/scene-graph", data=body, headers={"Origin": server.url})
    with urllib.request.urlopen(same, timeout=30) as answer:
        assert answer.status == 200 and "access-control-allow-origin" not in answer.headers


OUTSIDE = re.compile(r"""(?:https?:)?//(?!127\.0\.0\.1[:/])[\w.-]+""")


def test_the_api_docs_name_no_outside_url_and_their_assets_are_served(server):
    with urllib.request.urlopen(f"{server.url}/docs", timeout=30) as answer:
        html = answer.read().decode()
    assert not OUTSIDE.findall(html), OUTSIDE.findall(html)
    assets = re.findall(r"""(?:src|href)=["']([^"']+)["']""", html) + re.findall(r"""url: ?'([^']+)'""", html)
    assert any(asset.endswith(".js") for asset in assets)
    for asset in assets:
        assert asset.startswith("/"), asset
        with urllib.request.urlopen(f"{server.url}{asset}", timeout=30) as served:
            assert served.status == 200 and served.read(), asset
