"""Connections: at most so many in total and per client address, and each must keep sending its request head.

uvicorn accepts every connection and waits for its request head as long as the client likes. The guard
sits in the connection's protocol (`protocol_class`, a subclass of uvicorn's h11 protocol that only adds
`connection_made` / `connection_lost` bookkeeping, and makes one socket read at most `READ_SIZE`, which
bounds what uvicorn buffers per connection): a connection above `max_connections`, or above
`max_connections_per_client` from one address, is answered 503 / 429 and closed at once; a connection
that has not sent a complete request head within `head_timeout_s` of opening (or of its last answer, on
a kept-alive connection) is closed. Its middleware (`ConnectionTracking`) tells the guard when a
request's head is complete and when its answer is sent, by the client address uvicorn puts in the ASGI
scope (proxy headers off: that address is the socket's peer). Bodies have their own deadline (uploads.py).
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from dataclasses import dataclass

from egtr.serve.memory_bound import READ_SIZE


@dataclass
class Connection:
    transport: asyncio.Transport
    host: str
    timer: asyncio.TimerHandle | None = None
    requests: int = 0  # requests in progress (their head arrived, their answer not yet sent)


def peer_key(transport: asyncio.Transport) -> tuple:
    """(address, port) of the connection's peer, as uvicorn puts it in the ASGI scope's "client"."""
    peer = transport.get_extra_info("peername")
    return tuple(peer[:2]) if isinstance(peer, tuple) else (str(peer), 0)


def refusal(status: int, reason: str, message: str) -> bytes:
    """A complete HTTP/1.1 answer that closes the connection."""
    body = json.dumps({"detail": message}).encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n"
        "connection: close\r\nretry-after: 1\r\n\r\n"
    )
    return head.encode() + body


class ConnectionGuard:
    def __init__(self, max_connections: int, max_per_client: int, head_timeout_s: float) -> None:
        self.max_connections, self.max_per_client = max_connections, max_per_client
        self.head_timeout_s = head_timeout_s
        self.per_client: Counter[str] = Counter()
        self.refused = Counter()  # reason -> connections refused
        self.closed_idle = 0  # connections closed for not sending a request head in time
        self._open: dict[tuple, Connection] = {}

    # ------------------------------------------------------------------ the protocol's side
    def protocol_class(self, base: type | None = None) -> type:
        """uvicorn's h11 protocol (or `base`) with this guard's bookkeeping."""
        if base is None:
            from uvicorn.protocols.http.h11_impl import H11Protocol as base
        guard = self

        class GuardedProtocol(base):
            def connection_made(self, transport) -> None:
                super().connection_made(transport)
                if hasattr(transport, "max_size"):  # asyncio's socket transport: bytes per recv()
                    transport.max_size = READ_SIZE
                guard.opened(transport)

            def connection_lost(self, exc) -> None:
                guard.lost(self.transport)
                super().connection_lost(exc)

        return GuardedProtocol

    def opened(self, transport: asyncio.Transport) -> None:
        key = peer_key(transport)
        host = str(key[0])
        if len(self._open) >= self.max_connections:
            message = (
                f"server busy: {len(self._open)} connections are open (limit {self.max_connections}); retry"
            )
            self._refuse(transport, 503, "Service Unavailable", message, "total")
        elif self.per_client[host] >= self.max_per_client:
            message = (
                f"{self.per_client[host]} connections are open from {host} (limit {self.max_per_client} per "
                "client); close some, then retry"
            )
            self._refuse(transport, 429, "Too Many Requests", message, "per_client")
        else:
            self.per_client[host] += 1
            self._open[key] = connection = Connection(transport, host)
            self._arm(key, connection)

    def lost(self, transport: asyncio.Transport) -> None:
        key = peer_key(transport)
        connection = self._open.get(key)
        if connection is not None and connection.transport is transport:
            self._forget(key, connection)

    # ------------------------------------------------------------------ the application's side
    def request_started(self, scope) -> Connection | None:
        """A request's head arrived on the connection of `scope` (its timer stops)."""
        connection = self._open.get(tuple(scope["client"][:2])) if scope.get("client") else None
        if connection is not None:
            connection.requests += 1
            if connection.timer is not None:
                connection.timer.cancel()
                connection.timer = None
        return connection

    def request_finished(self, scope, connection: Connection) -> None:
        """Its answer was sent: the connection has `head_timeout_s` for its next request."""
        connection.requests -= 1
        key = tuple(scope["client"][:2])
        if connection.requests == 0 and self._open.get(key) is connection:
            self._arm(key, connection)

    def report(self) -> dict:
        return {
            "connections": len(self._open),
            "clients": len(+self.per_client),
            "connections_refused": dict(self.refused),
            "connections_closed_idle": self.closed_idle,
        }

    # ------------------------------------------------------------------ inside
    def _arm(self, key: tuple, connection: Connection) -> None:
        loop = asyncio.get_running_loop()
        connection.timer = loop.call_later(self.head_timeout_s, self._expire, key, connection)

    def _expire(self, key: tuple, connection: Connection) -> None:
        if self._open.get(key) is connection and connection.requests == 0:
            self.closed_idle += 1
            connection.transport.close()

    def _refuse(self, transport, status: int, reason: str, message: str, kind: str) -> None:
        self.refused[kind] += 1
        transport.write(refusal(status, reason, message))
        transport.close()

    def _forget(self, key: tuple, connection: Connection) -> None:
        del self._open[key]
        self.per_client[connection.host] -= 1
        if connection.timer is not None:
            connection.timer.cancel()


class ConnectionTracking:
    """ASGI middleware: tells the guard when a request's head has arrived and when its answer has left."""

    def __init__(self, app, guard: ConnectionGuard) -> None:
        self.app, self.guard = app, guard

    async def __call__(self, scope, receive, send) -> None:
        connection = self.guard.request_started(scope) if scope["type"] == "http" else None
        try:
            await self.app(scope, receive, send)
        finally:
            if connection is not None:
                self.guard.request_finished(scope, connection)
