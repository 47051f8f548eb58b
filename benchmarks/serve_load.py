"""Load on a real server: `egtr serve` in a subprocess on 127.0.0.1, and concurrent clients posting images.

A test harness, not part of the package: the load test (tests/serve/test_load.py) and
`benchmarks/bench_serve.py` use it; standard library only (subprocess, urllib,
threads), so it measures the server, not a client library.

    with ServerProcess(["--checkpoint", "model.safetensors", "--max-batch", "8"]) as server:
        result = run_clients(server.url, [jpeg_bytes], clients=16, requests=200)
        print(result.images_per_second, server.rss_bytes())
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path


def loopback(index: int) -> str:
    """A loopback address of its own for client `index` (127.0.1.1, 127.0.1.2, ...): the server sees
    each as another client address."""
    return f"127.0.{1 + index // 250}.{1 + index % 250}"


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


@dataclass
class Answer:
    status: int
    body: dict  # the JSON answer ({"detail": ...} for errors)
    seconds: float  # from sending to the whole answer


def multipart(body: bytes, name: str) -> tuple[bytes, str]:
    """(multipart/form-data body with one file field "image" named `name`, its content type)."""
    boundary = uuid.uuid4().hex
    head = f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="{name}"\r\n\r\n'
    return (
        head.encode() + body + f"\r\n--{boundary}--\r\n".encode(),
        f"multipart/form-data; boundary={boundary}",
    )


def post_image(
    url: str,
    body: bytes,
    query: str = "",
    name: str | None = None,
    timeout: float = 300.0,
    source: str | None = None,
) -> Answer:
    """POST an image to `url`/v1/scene-graph[?query]: raw bytes, or a multipart file named `name`; from
    the local address `source` when given (a loopback address other than 127.0.0.1 acts as another
    client)."""
    parts = urllib.parse.urlsplit(url)
    path = "/v1/scene-graph" + (f"?{query}" if query else "")
    data, content_type = multipart(body, name) if name is not None else (body, "application/octet-stream")
    connection = http.client.HTTPConnection(
        parts.hostname, parts.port, timeout=timeout, source_address=(source, 0) if source else None
    )
    started = time.perf_counter()
    try:
        connection.request("POST", path, body=data, headers={"Content-Type": content_type})
        response = connection.getresponse()
        status, text = response.status, response.read()
    finally:
        connection.close()
    return Answer(status, json.loads(text), time.perf_counter() - started)


def get_json(url: str, timeout: float = 10.0) -> dict:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return json.loads(response.read())


def worker_healths(url: str, count: int, timeout_s: float = 120.0) -> dict[int, dict]:
    """/healthz of each of `count` worker processes ({worker: health}): asked on new connections until
    every worker has answered (the kernel hands each connection to one of them)."""
    healths, deadline = {}, time.monotonic() + timeout_s
    while len(healths) < count:
        if time.monotonic() > deadline:
            raise RuntimeError(f"only workers {sorted(healths)} of {count} answered within {timeout_s:g} s")
        health = get_json(f"{url}/healthz")
        healths[health["worker"]] = health
        time.sleep(0.02)
    return healths


@dataclass
class LoadResult:
    answers: list[Answer]  # in request order
    seconds: float  # wall time of the whole run

    @property
    def images_per_second(self) -> float:
        return len(self.answers) / self.seconds

    def latency(self, quantile: float) -> float:
        ordered = sorted(answer.seconds for answer in self.answers)
        return ordered[min(len(ordered) - 1, int(quantile * len(ordered)))]


def run_clients(
    url: str,
    bodies: list[bytes],
    clients: int,
    requests: int,
    query: str = "",
    names: list[str] | None = None,
    sources: list[str] | None = None,
) -> LoadResult:
    """`requests` POSTs from `clients` concurrent clients; request i sends bodies[i % len(bodies)] (as a
    multipart file named names[i % len(bodies)] when `names` are given, else as raw bytes), from the local
    address sources[i % len(sources)] when given."""

    def send(index: int) -> Answer:
        position = index % len(bodies)
        source = sources[index % len(sources)] if sources else None
        return post_image(url, bodies[position], query, names[position] if names else None, source=source)

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        answers = list(pool.map(send, range(requests)))
    return LoadResult(answers, time.perf_counter() - started)


class ServerProcess:
    """`python -m egtr serve ARGUMENTS --host 127.0.0.1 --port <free>` for the duration of a `with`."""

    def __init__(
        self, arguments: list[str], startup_timeout_s: float = 180.0, env: dict | None = None
    ) -> None:
        self.arguments, self.startup_timeout_s = list(arguments), startup_timeout_s
        self.env = {**os.environ, **(env or {})}
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> ServerProcess:
        self.log = tempfile.NamedTemporaryFile("w+", prefix="egtr-serve-", suffix=".log")
        command = [sys.executable, "-m", "egtr", "serve", "--host", "127.0.0.1", "--port", str(self.port)]
        self.process = subprocess.Popen(
            [*command, *self.arguments], stdout=self.log, stderr=subprocess.STDOUT, env=self.env
        )
        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"egtr serve exited with {self.process.returncode}:\n{self.output()}")
            try:
                get_json(f"{self.url}/healthz", timeout=2)
                return self
            except OSError:
                time.sleep(0.2)
        self.__exit__(None, None, None)
        raise RuntimeError(f"egtr serve did not answer within {self.startup_timeout_s:g} s:\n{self.output()}")

    def output(self) -> str:
        """What the server printed so far."""
        return Path(self.log.name).read_text(errors="replace")

    def rss_bytes(self, field: str = "VmRSS") -> int:
        """Resident memory of the server process now (VmRSS), or at its peak since `reset_peak` (VmHWM);
        Linux /proc."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError(f"no {field} in /proc status")

    def peak_rss_bytes(self) -> int:
        return self.rss_bytes("VmHWM")

    def reset_peak(self) -> None:
        """Start the peak (VmHWM) anew from the current resident size."""
        Path(f"/proc/{self.process.pid}/clear_refs").write_text("5")

    def __exit__(self, *_) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()
