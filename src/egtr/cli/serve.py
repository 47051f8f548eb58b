"""`egtr serve`: the scene-graph HTTP API and its web page (FastAPI + uvicorn, the `serve` extra).

POST an image to /v1/scene-graph for the same JSON as `egtr predict`, or open http://HOST:PORT/ in a
browser. Concurrent requests are batched for the model. Binds to 127.0.0.1 unless --host says otherwise;
--token (or $EGTR_SERVE_TOKEN) makes /v1/* require "Authorization: Bearer TOKEN".
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import sys
from pathlib import Path

from egtr.cli import options
from egtr.cli.errors import CommandError
from egtr.cli.options import (
    add_backend_arguments,
    add_checkpoint_argument,
    add_device_argument,
    add_logit_adjustment_arguments,
    add_max_pixels_argument,
    add_names_argument,
    add_reading_arguments,
    add_size_arguments,
    build_backend,
    checkpoint_path,
    image_sizes,
)
from egtr.serve.limits import MEGABYTE, ServerLimits

TOKEN_VARIABLE = "EGTR_SERVE_TOKEN"
DEFAULTS = ServerLimits()
FLAGS = {  # ServerLimits field -> the flag that sets it, for error messages
    "max_body_bytes": "--max-body-mb (in bytes)",
    "max_pixels": "--max-pixels",
    "body_timeout_s": "--body-timeout",
    "timeout_s": "--timeout",
    "max_batch": "--max-batch",
    "batch_wait_ms": "--batch-wait-ms",
    "max_queue": "--max-queue",
    "token": "--token",
}


def add_parser(subparsers: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "serve",
        parents=parents,
        help="an HTTP API and a web page that answer scene graphs of posted images",
        description="Serve a model over HTTP: POST /v1/scene-graph (an image, raw or multipart; options "
        "as query parameters) answers the JSON of `egtr predict`; GET /v1/model, GET /healthz, the page "
        'at /, API docs at /docs. Needs `pip install "egtr[serve]"`.',
    )
    add_checkpoint_argument(parser, backends=True, demo_default=True)
    add_names_argument(parser)
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to bind; 0.0.0.0 listens on every interface: use --token then (default: %(default)s)",
    )
    parser.add_argument("--port", type=int, default=8000, help="TCP port (default: %(default)s)")
    add_device_argument(parser)
    add_size_arguments(parser)
    parser.add_argument(
        "--max-batch",
        type=int,
        metavar="N",
        default=DEFAULTS.max_batch,
        help="images per forward pass: concurrent same-size requests are batched (default: %(default)s)",
    )
    parser.add_argument(
        "--batch-wait-ms",
        type=float,
        metavar="MS",
        default=DEFAULTS.batch_wait_ms,
        help="how long the model waits for more requests to fill a batch (default: %(default)s)",
    )
    parser.add_argument(
        "--max-body-mb",
        type=float,
        metavar="MB",
        default=DEFAULTS.max_body_bytes / MEGABYTE,
        help="largest request body, in MiB; larger gets 413 (default: %(default)s)",
    )
    add_max_pixels_argument(parser, DEFAULTS.max_pixels)
    parser.add_argument(
        "--timeout",
        type=float,
        metavar="S",
        default=DEFAULTS.timeout_s,
        help="seconds from a request's arrival to its answer; later gets 503 (default: %(default)s)",
    )
    parser.add_argument(
        "--body-timeout",
        type=float,
        metavar="S",
        default=DEFAULTS.body_timeout_s,
        help="seconds for the request body to arrive; later gets 408 (default: %(default)s)",
    )
    parser.add_argument(
        "--max-queue",
        type=int,
        metavar="N",
        default=DEFAULTS.max_queue,
        help="requests in progress at most; more get 503 at once (default: %(default)s)",
    )
    parser.add_argument(
        "--token",
        help=f"require 'Authorization: Bearer TOKEN' on /v1/* (default: ${TOKEN_VARIABLE} if set, else none)",
    )
    add_logit_adjustment_arguments(parser)
    add_reading_arguments(parser)
    add_backend_arguments(parser)
    parser.add_argument(
        "--log-level",
        default="info",
        choices=("critical", "error", "warning", "info", "debug"),
        help="uvicorn's log level; info logs every request (default: %(default)s)",
    )
    parser.set_defaults(func=run)


def server_limits(args: argparse.Namespace) -> ServerLimits:
    image_sizes(args)  # given sizes are checked before the model loads
    if not 0 <= args.port <= 65535:
        raise CommandError(f"--port must be in 0..65535, got {args.port}")
    token = args.token if args.token is not None else os.environ.get(TOKEN_VARIABLE)
    try:
        return ServerLimits(
            max_body_bytes=int(args.max_body_mb * MEGABYTE),
            max_pixels=args.max_pixels,
            body_timeout_s=args.body_timeout,
            timeout_s=args.timeout,
            max_batch=args.max_batch,
            batch_wait_ms=args.batch_wait_ms,
            max_queue=args.max_queue,
            token=token,
        )
    except ValueError as error:
        field, _, rest = str(error).partition(" ")
        raise CommandError(f"{FLAGS.get(field, field)} {rest}") from error


def build_predictor(args: argparse.Namespace, checkpoint: Path):
    """The predictor the server answers with: the shared predictor options, batches of --max-batch."""
    return options.build_predictor(args, build_backend(args, checkpoint), batch_size=args.max_batch)


def is_local(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def run(args: argparse.Namespace) -> int:
    limits = server_limits(args)
    try:
        import uvicorn

        from egtr.serve.app import create_app
    except ImportError as error:
        raise CommandError(
            f'egtr serve needs the serve extra: pip install "egtr[serve]" ({error})'
        ) from error
    checkpoint = checkpoint_path(args)
    predictor = build_predictor(args, checkpoint)
    if predictor.vocabulary.note:
        print(f"note: {predictor.vocabulary.note}", file=sys.stderr)
    if not is_local(args.host) and limits.token is None:
        print(
            f"warning: listening on {args.host} without a token: anyone who reaches this port can use the "
            f"model; pass --token or set ${TOKEN_VARIABLE}",
            file=sys.stderr,
        )
    app = create_app(predictor, limits, model_name=checkpoint.name)
    shown = f"[{args.host}]" if ":" in args.host else args.host
    print(
        f"egtr serve: {checkpoint} on {predictor.device}, batches of up to {limits.max_batch}; "
        f"page http://{shown}:{args.port}/ , API docs http://{shown}:{args.port}/docs ; Ctrl-C stops",
        file=sys.stderr,
        flush=True,
    )
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level, timeout_graceful_shutdown=5)
    return 0
