"""Scene graphs as a service: an HTTP API and a web page around `SceneGraphPredictor`.

- `create_app(predictor, limits)` (app.py): the FastAPI application (`POST /v1/scene-graph`,
  `GET /v1/model`, `GET /healthz`, the page at `/`, OpenAPI docs at `/docs`);
- `ServerLimits` (limits.py): connections, bodies and their upload budget, decoded-image budget, pixels,
  timeouts, queue, batching, token (the memory they bound: memory_bound.py);
- `Batcher` (batching.py): gathers concurrent requests into batches for the model thread;
- static/: the page, plain HTML/JS/CSS (no build step, no external resources).
The server adds no model logic: reading is `egtr.data.images.load_rgb`, the rest is the predictor's.
Needs the `serve` extra (`pip install "egtr[serve]"`).
"""

from __future__ import annotations

from egtr.serve.limits import ServerLimits

__all__ = ["ServerLimits", "create_app"]


def __getattr__(name: str):
    if name == "create_app":
        from egtr.serve.app import create_app

        return create_app
    raise AttributeError(f"module 'egtr.serve' has no attribute {name!r}")
