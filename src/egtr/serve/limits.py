"""What the server accepts and how it batches: every limit in one place, each with its default."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass

MEGABYTE = 1 << 20


@dataclass(frozen=True)
class ServerLimits:
    max_body_bytes: int = 20 * MEGABYTE  # request body (the encoded image); larger: 413
    max_pixels: int = 40_000_000  # width x height of the decoded image; larger: 413 (before decoding)
    body_timeout_s: float = 30.0  # the whole body must arrive within this; else 408
    timeout_s: float = 60.0  # from the request's arrival to its graph; else 503
    max_batch: int = 8  # images per forward pass
    batch_wait_ms: float = 5.0  # how long the model thread waits for more requests to batch
    max_queue: int = 64  # requests decoding or waiting for the model; more: 503 at once
    decoders: int = max(2, min(8, os.cpu_count() or 2))  # images decoded at the same time
    token: str | None = None  # when set, /v1/* needs "Authorization: Bearer <token>"

    def __post_init__(self) -> None:
        for name in ("max_body_bytes", "max_pixels", "max_batch", "max_queue", "decoders"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        for name in ("body_timeout_s", "timeout_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.batch_wait_ms < 0:
            raise ValueError(f"batch_wait_ms must be >= 0, got {self.batch_wait_ms}")
        if self.token is not None and not self.token.strip():
            raise ValueError("token must not be empty")

    def public(self) -> dict:
        """The limits a client may know (everything but the token)."""
        limits = asdict(self)
        limits["token_required"] = limits.pop("token") is not None
        return limits
