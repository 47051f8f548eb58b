"""A small random-weight predictor, its app behind FastAPI's test client, and encoded test images."""

from __future__ import annotations

import io
import threading
import time

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from egtr import SceneGraphPredictor
from egtr.serve import ServerLimits, create_app
from tests.inference.conftest import FAST, checkpoint, one_torch_thread, random_pixels, small_model

# fixtures shared with the inference tests: a saved small model, and one torch thread for tiny inputs
__all__ = ["checkpoint", "one_torch_thread"]

LIMITS = ServerLimits(max_body_bytes=200_000, max_pixels=20_000, batch_wait_ms=1.0)


def encoded(pixels: np.ndarray, format: str = "PNG", **options) -> bytes:
    stream = io.BytesIO()
    Image.fromarray(pixels).save(stream, format=format, **options)
    return stream.getvalue()


def decoded(body: bytes) -> Image.Image:
    return Image.open(io.BytesIO(body))


def photo(width: int = 64, height: int = 48, seed: int = 0, format: str = "PNG") -> bytes:
    return encoded(random_pixels(height, width, seed), format)


@pytest.fixture(scope="module")
def predictor() -> SceneGraphPredictor:
    return SceneGraphPredictor(small_model(), **FAST)


def client_for(predictor, limits: ServerLimits = LIMITS) -> TestClient:
    return TestClient(create_app(predictor, limits, model_name="small-random"), base_url="http://127.0.0.1")


@pytest.fixture
def client(predictor):
    with client_for(predictor) as test_client:
        yield test_client


def until_closed(connection) -> bytes:
    """Everything the server sends on a socket until it closes the connection."""
    received = b""
    while chunk := connection.recv(65536):
        received += chunk
    return received


class LiveServer:
    """uvicorn serving `app` on 127.0.0.1 from a thread of this process, configured as `egtr serve` runs it
    (browser and socket tests)."""

    def __init__(self, app) -> None:
        import uvicorn
        from benchmarks.serve_load import free_port

        from egtr.serve.server import config

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(config(app, "127.0.0.1", self.port))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *_) -> None:
        self.server.should_exit = True
        self.thread.join(30)
