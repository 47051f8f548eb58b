"""Host and Origin checks: a token-less server answers only requests addressed to it by name, from itself.

A server without a token trusts whoever can reach it, which on 127.0.0.1 means programs of this machine,
but also, through the browser, any web page the user visits: the page can post to http://127.0.0.1:PORT
(a cross-origin "simple" request needs no preflight), and by DNS rebinding it can even make its own name
resolve to 127.0.0.1 and read the answers. So:
- without a token, the `Host` header must name the bind address: 127.0.0.1, localhost or [::1] (any
  port), or a name given with --allowed-host; anything else is answered 400 (DNS rebinding sends the
  attacker's name);
- a request that changes something (any method but GET, HEAD, OPTIONS) that carries an `Origin` header
  (browsers send it) must come from the server's own origin (the same host and port as `Host`), else 403.
  No CORS headers are ever sent, so no other origin can read an answer either.
With a token, requests without it get 401 whatever their Host; the Origin check stays.
"""

from __future__ import annotations

import json
from urllib.parse import urlsplit

LOCAL_NAMES = ("127.0.0.1", "localhost", "::1")
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


def host_name(host: str) -> str:
    """The name part of a Host header value: 'localhost:8000' -> 'localhost', '[::1]:8000' -> '::1'."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


class OriginCheck:
    """ASGI middleware; `allowed_hosts` None accepts any Host (a server with a token)."""

    def __init__(self, app, allowed_hosts: tuple[str, ...] | None) -> None:
        self.app = app
        self.allowed = None if allowed_hosts is None else {host_name(name) for name in allowed_hosts}

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http":
            refusal = self.refusal(scope)
            if refusal is not None:
                status, message = refusal
                body = json.dumps({"detail": message}).encode()
                headers = [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ]
                await send({"type": "http.response.start", "status": status, "headers": headers})
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)

    def refusal(self, scope) -> tuple[int, str] | None:
        headers = {name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]}
        host = headers.get("host", "")
        if self.allowed is not None and host_name(host) not in self.allowed:
            names = ", ".join(sorted(self.allowed))
            return 400, (
                f"Host {host!r} is not a name of this server ({names}); a server without a token answers "
                "only requests addressed to its own address (start it with --allowed-host NAME to add one)"
            )
        origin = headers.get("origin")
        cross = origin is not None and (
            urlsplit(origin).netloc.lower() != host.strip().lower() or not origin.startswith("http")
        )
        if scope["method"] not in SAFE_METHODS and cross:
            return 403, (
                f"cross-origin request from {origin!r} refused: this server takes uploads only from its "
                "own page or from programs that send no Origin header"
            )
        return None
