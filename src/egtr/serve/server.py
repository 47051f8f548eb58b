"""Running the application under uvicorn: one process, or `workers` processes behind one port.

`config` is uvicorn's configuration with the connection guard's protocol (connections.py), the asyncio
event loop (the guard sizes its socket reads) and proxy headers off (the client address is the socket's
peer, so that per-client limits cannot be dodged with an X-Forwarded-For header).

`run_workers` binds the port once and starts `count` processes (spawned: each loads its own model and
runs its own batcher) that accept connections on that one socket; the kernel hands each new connection
to one of them. A worker that dies is started again; Ctrl-C or SIGTERM stops them all.
"""

from __future__ import annotations

import multiprocessing
import signal
import socket
import sys
import time
from collections.abc import Callable

H11_MAX_HEAD = 16 * 1024  # bytes of a request head h11 buffers before refusing it (memory_bound.py)


def config(app, host: str, port: int, log_level: str = "warning"):
    import uvicorn

    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        http=app.state.guard.protocol_class(),
        loop="asyncio",
        proxy_headers=False,
        h11_max_incomplete_event_size=H11_MAX_HEAD,
        timeout_graceful_shutdown=5,
    )


def serve(app, host: str, port: int, log_level: str, sockets: list[socket.socket] | None = None) -> None:
    """Serve `app` in this process until Ctrl-C / SIGTERM (on `sockets` when given, else binding)."""
    import uvicorn

    uvicorn.Server(config(app, host, port, log_level)).run(sockets=sockets)


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on host:port (IPv6 when the host is an IPv6 address)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((host, port))
    listener.listen(2048)
    listener.set_inheritable(True)
    return listener


def run_workers(count: int, listener: socket.socket, target: Callable, arguments: tuple) -> int:
    """Run `target(index, listener, ready, *arguments)` in `count` spawned processes until stopped; each sets
    its `ready` event once its model is loaded. A worker that exits after that is started again; one that
    exits before (it cannot start) stops them all (exit code 1)."""
    context = multiprocessing.get_context("spawn")
    stopping = False

    def start(index: int):
        ready = context.Event()
        process = context.Process(
            target=target, args=(index, listener, ready, *arguments), name=f"egtr-worker-{index}"
        )
        process.start()
        return process, ready

    def stop(*_) -> None:
        nonlocal stopping
        stopping = True

    previous = {name: signal.signal(name, stop) for name in (signal.SIGINT, signal.SIGTERM)}
    workers = {index: start(index) for index in range(count)}
    code = 0
    try:
        while not stopping:
            time.sleep(0.2)
            for index, (process, ready) in list(workers.items()):
                if stopping or process.is_alive():
                    continue
                if not ready.is_set():
                    print(
                        f"egtr serve: worker {index} could not start (exit code {process.exitcode})",
                        file=sys.stderr,
                    )
                    code, stopping = 1, True
                    break
                print(
                    f"egtr serve: worker {index} exited ({process.exitcode}); starting it again",
                    file=sys.stderr,
                )
                workers[index] = start(index)
    finally:
        for process, _ in workers.values():
            if process.is_alive():
                process.terminate()
        for process, _ in workers.values():
            process.join(30)
            if process.is_alive():
                process.kill()
                process.join()
        for name, handler in previous.items():
            signal.signal(name, handler)
        listener.close()
    return code
