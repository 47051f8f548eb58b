"""Limits only a real socket can show: a body that never finishes, a declared length above the limit, a head
that never finishes, too many connections."""

import socket
import time

import pytest

from egtr.serve import ServerLimits

from .conftest import LiveServer, client_for, photo, until_closed


@pytest.fixture(scope="module")
def server(predictor):
    app = client_for(
        predictor, ServerLimits(max_body_bytes=100_000, body_timeout_s=0.5, min_upload_rate=1024)
    ).app
    with LiveServer(app) as live:
        yield live


def exchange(server, head: bytes, body: bytes = b"") -> str:
    """Send a request head (and part of a body), return the whole answer as text."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as connection:
        connection.sendall(head + body)
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
            chunk = connection.recv(65536)
            if not chunk:
                break
            answer += chunk
    return answer.decode()


def post_head(length: int) -> bytes:
    return (
        f"POST /v1/scene-graph HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/png\r\n"
        f"Content-Length: {length}\r\n\r\n"
    ).encode()


def test_a_body_that_stops_arriving_gets_408_and_its_connection_closed(server):
    answer = exchange(server, post_head(5000), b"\x89PNG" + b"\x00" * 100)  # 104 of 5000 bytes, then silence
    assert answer.startswith("HTTP/1.1 408") and "connection: close" in answer
    assert (
        '{"detail":"the request body arrived too slowly: 104 of 5000 bytes; a body may take 0.5 s plus 1 s '
        'per 1KiB (--body-timeout, --min-upload-rate)"}'
    ) in answer


def test_a_declared_length_above_the_limit_gets_413_before_the_body(server):
    answer = exchange(server, post_head(10_000_000))
    assert answer.startswith("HTTP/1.1 413")
    assert "request body of 10000000 bytes is above the limit of 100000 bytes" in answer


def test_after_both_the_server_answers_a_photo(server):
    body = photo()
    answer = exchange(server, post_head(len(body)), body)
    assert answer.startswith("HTTP/1.1 200") and '"triplets":' in answer


@pytest.fixture(scope="module")
def small_server(predictor):
    limits = ServerLimits(max_connections=3, max_connections_per_client=3, head_timeout_s=0.3)
    with LiveServer(client_for(predictor, limits).app) as live:
        yield live


def test_a_connection_that_does_not_finish_its_head_is_closed(small_server):
    with socket.create_connection(("127.0.0.1", small_server.port), timeout=30) as connection:
        connection.sendall(b"POST /v1/scene-graph HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Le")
        assert until_closed(connection) == b""
    with socket.create_connection(("127.0.0.1", small_server.port), timeout=30) as idle:
        assert until_closed(idle) == b""  # nothing sent at all


def test_connections_above_the_total_limit_get_503(small_server):
    with socket.create_connection(("127.0.0.1", small_server.port), timeout=30) as first:
        first.sendall(post_head(5000))  # heads complete: the head timeout no longer applies
        with socket.create_connection(("127.0.0.1", small_server.port), timeout=30) as second:
            second.sendall(post_head(5000))
            with socket.create_connection(("127.0.0.1", small_server.port), timeout=30) as third:
                third.sendall(post_head(5000))
                time.sleep(0.1)
                with socket.create_connection(("127.0.0.1", small_server.port), timeout=30) as fourth:
                    answer = until_closed(fourth).decode()
    assert answer.startswith("HTTP/1.1 503 Service Unavailable")
    assert "server busy: 3 connections are open (limit 3); retry" in answer
