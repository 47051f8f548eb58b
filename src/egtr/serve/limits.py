"""What the server accepts, how long it waits, how much it holds: every limit in one place, with its default.

Each field of `ServerLimits` carries its help as metadata (`limit`), from which `egtr serve` makes one flag
per field (cli/serve.py), and `GET /v1/model` reports them all. Byte sizes are given and shown with binary
units (`20MiB`, `parse_bytes` / `format_bytes`). The memory they bound: memory_bound.py.
"""

from __future__ import annotations

import os
import re
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from egtr.serve.memory_bound import GIB, KIB, MAX_CHUNK, MIB

UNITS = {"": 1, "B": 1, "KIB": KIB, "MIB": MIB, "GIB": GIB}


def parse_bytes(text: str) -> int:
    """'20MiB', '512KiB', '1GiB', '1048576' -> bytes; ValueError for anything else."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMG]iB|B)?\s*", str(text), re.IGNORECASE)
    if match is None:
        raise ValueError(f"{text!r} is not a size: give bytes or a number with KiB, MiB or GiB (e.g. 20MiB)")
    return int(float(match.group(1)) * UNITS[(match.group(2) or "").upper()])


def format_bytes(count: int) -> str:
    """In GiB or MiB when it divides exactly, else MiB with one decimal from 1 MiB on, else KiB or bytes
    (20971520 -> '20MiB', 1572864 -> '1.5MiB', 32768 -> '32KiB')."""
    for unit, size in (("GiB", GIB), ("MiB", MIB)):
        if count >= size and count % size == 0:
            return f"{count // size}{unit}"
    if count >= MIB:
        return f"{count / MIB:.1f}MiB"
    return f"{count // KIB}KiB" if count >= KIB and count % KIB == 0 else f"{count}B"


def limit(
    help: str, *, kind: str = "int", flag: str | None = None, least: float = 1, strict: bool = False
) -> dict:
    """Field metadata of a limit: `help`, `kind` (int, float or bytes: how its flag parses), `flag` (default
    --the-field-name without its unit suffix), the smallest value `least` (`strict`: the value must be
    above it)."""
    return {"help": help, "kind": kind, "flag": flag, "least": least, "strict": strict}


@dataclass(frozen=True)
class ServerLimits:
    """Limits of one server process (with --workers N, each worker has its own)."""

    # ------------------------------------------------------------------ connections and bodies
    max_connections: int = field(
        default=256, metadata=limit("open connections at most; more are answered 503 and closed")
    )
    max_connections_per_client: int = field(
        default=32,
        metadata=limit("open connections from one client address at most; more are answered 429 and closed"),
    )
    head_timeout_s: float = field(
        default=10.0,
        metadata=limit(
            "seconds a connection may take to send a request's head (also: idle time between requests); "
            "then it is closed",
            kind="float",
            least=0,
            strict=True,
        ),
    )
    max_body_bytes: int = field(
        default=20 * MIB,
        metadata=limit("largest request body (the encoded image); larger: 413", kind="bytes"),
    )
    max_upload_bytes_in_flight: int = field(
        default=64 * MIB,
        metadata=limit(
            "bytes of request bodies held at once, arriving or waiting to be decoded; a body that would go "
            "above waits, unread (the oldest body can always finish)",
            kind="bytes",
        ),
    )
    body_timeout_s: float = field(
        default=10.0,
        metadata=limit(
            "seconds a body may take before the minimum rate applies: a body must have arrived within "
            "this plus its size divided by --min-upload-rate, else 408",
            kind="float",
            least=0,
            strict=True,
        ),
    )
    max_stall_s: float = field(
        default=5.0,
        metadata=limit(
            "seconds a body may send nothing while other bodies wait for upload memory; then it is "
            "dropped (408)",
            kind="float",
            least=0,
            strict=True,
        ),
    )
    min_upload_rate: int = field(
        default=32 * KIB,
        metadata=limit("bytes per second a body must keep up after --body-timeout", kind="bytes"),
    )
    # ------------------------------------------------------------------ images
    max_pixels: int = field(
        default=40_000_000,
        metadata=limit("width x height of an image; larger: 413 before decoding", flag="--max-pixels"),
    )
    max_decoded_bytes_in_flight: int = field(
        default=400 * MIB,
        metadata=limit(
            "memory of images being decoded, resized or waiting for their batch: each is charged for its "
            "pixels (decoded and resized) before it is decoded, and waits while the budget is spent; an "
            "image that alone needs more is refused with 413",
            kind="bytes",
        ),
    )
    decoders: int = field(
        default=max(2, min(8, os.cpu_count() or 2)),
        metadata=limit("threads decoding and resizing images"),
    )
    # ------------------------------------------------------------------ the model
    timeout_s: float = field(
        default=60.0,
        metadata=limit(
            "seconds from a request's admission (its body complete) to its answer; later: 503",
            kind="float",
            least=0,
            strict=True,
        ),
    )
    max_queue: int = field(
        default=64,
        metadata=limit("requests admitted (body complete) and not yet answered at most; more: 503 at once"),
    )
    max_batch: int = field(default=8, metadata=limit("images per forward pass"))
    batch_wait_ms: float = field(
        default=5.0,
        metadata=limit("how long the model thread waits for more requests to batch", kind="float", least=0),
    )
    token: str | None = field(default=None, metadata={"help": "when set, /v1/* needs this bearer token"})

    def __post_init__(self) -> None:
        for spec in fields(self):
            if "least" not in spec.metadata:
                continue
            value, least = getattr(self, spec.name), spec.metadata["least"]
            if spec.metadata["strict"] and not value > least:
                raise ValueError(f"{spec.name} must be positive, got {value}")
            if not value >= least:
                raise ValueError(f"{spec.name} must be at least {least:g}, got {value}")
        if self.max_connections_per_client > self.max_connections:
            raise ValueError(
                f"max_connections_per_client must be at most max_connections ({self.max_connections}), "
                f"got {self.max_connections_per_client}"
            )
        if self.max_upload_bytes_in_flight < self.max_body_bytes + MAX_CHUNK:
            raise ValueError(
                f"max_upload_bytes_in_flight must hold one largest body and a read "
                f"({format_bytes(self.max_body_bytes + MAX_CHUNK)}), got "
                f"{format_bytes(self.max_upload_bytes_in_flight)}"
            )
        if self.token is not None and not self.token.strip():
            raise ValueError("token must not be empty")

    def public(self) -> dict[str, Any]:
        """The limits a client may know (everything but the token)."""
        limits = asdict(self)
        limits["token_required"] = limits.pop("token") is not None
        return limits


def limit_fields() -> list:
    """The fields of `ServerLimits` that are limits (every field but the token)."""
    return [spec for spec in fields(ServerLimits) if "kind" in spec.metadata]
