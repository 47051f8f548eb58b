"""`egtr serve`: the scene-graph HTTP API and its web page (FastAPI + uvicorn, the `serve` extra).

POST an image to /v1/scene-graph for the same JSON as `egtr predict`, or open http://HOST:PORT/ in a
browser. Concurrent requests are batched for the model. Binds to 127.0.0.1 unless --host says otherwise
(an address beyond this machine needs a token); --token-file (or $EGTR_SERVE_TOKEN) makes /v1/* require
"Authorization: Bearer TOKEN". --workers N runs N model processes behind the port.
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
from egtr.serve.limits import ServerLimits, format_bytes, limit_fields, parse_bytes
from egtr.serve.origins import LOCAL_NAMES

TOKEN_VARIABLE = "EGTR_SERVE_TOKEN"
DEFAULTS = ServerLimits()
KINDS = {"int": int, "float": float, "bytes": parse_bytes}


def limit_flag(spec) -> str:
    """The flag of a `ServerLimits` field: its metadata's, else --the-name without a seconds suffix."""
    return spec.metadata["flag"] or "--" + spec.name.removesuffix("_s").replace("_", "-")


def limit_metavar(spec) -> str:
    if spec.metadata["kind"] == "bytes":
        return "BYTES"
    return {"_s": "S", "ms": "MS"}.get(spec.name[-2:], "N")


def flag_type(kind: str):
    def parse(text: str):
        try:
            return KINDS[kind](text)
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from error

    parse.__name__ = kind
    return parse


def add_limit_arguments(parser: argparse._ActionsContainer) -> None:
    """One flag per field of `ServerLimits` (egtr.serve.limits), made from the field and its metadata;
    --max-pixels is the flag egtr predict shares (cli/options.py)."""
    for spec in limit_fields():
        default = getattr(DEFAULTS, spec.name)
        if spec.name == "max_pixels":
            add_max_pixels_argument(parser, default)
            continue
        shown = format_bytes(default) if spec.metadata["kind"] == "bytes" else f"{default:g}"
        parser.add_argument(
            limit_flag(spec),
            dest=spec.name,
            type=flag_type(spec.metadata["kind"]),
            metavar=limit_metavar(spec),
            default=default,
            help=f"{spec.metadata['help']} (default: {shown})",
        )


def add_parser(subparsers: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "serve",
        parents=parents,
        help="an HTTP API and a web page that answer scene graphs of posted images",
        description="Serve a model over HTTP: POST /v1/scene-graph (an image, raw or multipart; options "
        "as query parameters) answers the JSON of `egtr predict`; GET /v1/model, GET /healthz, the page "
        'at /, API docs at /docs. Needs `pip install "egtr[serve]"`. Sizes take KiB, MiB or GiB (20MiB).',
    )
    add_checkpoint_argument(parser, backends=True, demo_default=True)
    add_names_argument(parser)
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to bind; one beyond this machine (0.0.0.0, a LAN address) needs a token "
        "(default: %(default)s)",
    )
    parser.add_argument("--port", type=int, default=8000, help="TCP port (default: %(default)s)")
    parser.add_argument(
        "--allowed-host",
        action="append",
        default=[],
        metavar="NAME",
        help="a further Host name a server without a token answers to, besides 127.0.0.1, localhost and "
        "[::1] (repeatable; default: none)",
    )
    tokens = parser.add_mutually_exclusive_group()
    tokens.add_argument(
        "--token-file",
        metavar="FILE",
        help="require 'Authorization: Bearer TOKEN' on /v1/*, TOKEN being this file's content (default: "
        f"${TOKEN_VARIABLE} if set, else none)",
    )
    tokens.add_argument(
        "--token",
        help="the same with the token itself, which other users of this machine can read in the process "
        f"list: prefer --token-file or ${TOKEN_VARIABLE} (default: none)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        metavar="N",
        default=1,
        help="model processes answering on the port, each with its own model and batcher; with GPUs, "
        "worker i runs on GPU i modulo their number; on the CPU each gets the cores / N threads unless "
        "--threads says otherwise (default: %(default)s)",
    )
    add_device_argument(parser)
    add_size_arguments(parser)
    add_limit_arguments(parser)
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


def read_token(args: argparse.Namespace) -> str | None:
    """--token-file's content, --token, or $EGTR_SERVE_TOKEN; None when none is given."""
    if args.token_file:
        path = Path(args.token_file)
        try:
            token = path.read_text().strip()
        except (OSError, UnicodeDecodeError) as error:
            raise CommandError(f"--token-file {path}: cannot read it ({error})") from error
        if not token:
            raise CommandError(f"--token-file {path}: the file is empty")
        if path.stat().st_mode & 0o077:
            print(f"note: {path} can be read by other users: chmod 600 {path}", file=sys.stderr)
        return token
    if args.token is not None:
        print(
            f"note: a --token shows in the process list; prefer --token-file or ${TOKEN_VARIABLE}",
            file=sys.stderr,
        )
        return args.token
    return os.environ.get(TOKEN_VARIABLE)


def server_limits(args: argparse.Namespace) -> ServerLimits:
    image_sizes(args)  # given sizes are checked before the model loads
    if not 0 <= args.port <= 65535:
        raise CommandError(f"--port must be in 0..65535, got {args.port}")
    if args.workers < 1:
        raise CommandError(f"--workers must be at least 1, got {args.workers}")
    token = read_token(args)
    if not is_local(args.host) and token is None:
        raise CommandError(
            f"--host {args.host} listens beyond this machine, so a token is required: put one in a file and "
            f"pass --token-file FILE, or set ${TOKEN_VARIABLE}"
        )
    flags = {spec.name: limit_flag(spec) for spec in limit_fields()}
    try:
        return ServerLimits(**{name: getattr(args, name) for name in flags}, token=token)
    except ValueError as error:
        field, _, rest = str(error).partition(" ")
        raise CommandError(f"{flags.get(field, '--' + field)} {rest}") from error


def allowed_hosts(args: argparse.Namespace) -> tuple[str, ...]:
    """The Host names a token-less server answers to: its loopback names and --allowed-host."""
    return (*LOCAL_NAMES, args.host, *args.allowed_host)


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


def worker_settings(args: argparse.Namespace, index: int, workers: int) -> argparse.Namespace:
    """Worker `index`'s flags: its GPU (index modulo the GPUs, when --device runs on CUDA and there are
    several), or its share of the CPU cores for the runtime's threads."""
    import torch

    args = argparse.Namespace(**vars(args))
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if gpus and args.device in ("auto", "cuda", "gpu"):
        args.device = f"cuda:{index % gpus}"
    elif workers > 1 and args.threads is None and not str(args.device).startswith(("cuda", "gpu")):
        args.threads = max(1, (os.cpu_count() or 1) // workers)
    return args


def serve_worker(index, listener, ready, args, limits, workers) -> None:
    """One of --workers N processes: its own model and batcher, accepting on the shared socket."""
    from egtr.serve.server import serve

    app, _, _ = load_app(worker_settings(args, index, workers), limits, index, workers)
    ready.set()
    serve(app, args.host, args.port, args.log_level, sockets=[listener])


def load_app(args: argparse.Namespace, limits: ServerLimits, worker: int = 0, workers: int = 1):
    from egtr.serve.app import create_app

    checkpoint = checkpoint_path(args)
    predictor = build_predictor(args, checkpoint)
    if predictor.vocabulary.note and worker == 0:
        print(f"note: {predictor.vocabulary.note}", file=sys.stderr)
    hosts = None if limits.token else allowed_hosts(args)
    return create_app(predictor, limits, checkpoint.name, hosts, worker, workers), checkpoint, predictor


def run(args: argparse.Namespace) -> int:
    limits = server_limits(args)
    try:
        import uvicorn  # noqa: F401

        from egtr.serve.server import bind, run_workers, serve
    except ImportError as error:
        raise CommandError(
            f'egtr serve needs the serve extra: pip install "egtr[serve]" ({error})'
        ) from error
    checkpoint = checkpoint_path(args)
    shown = f"[{args.host}]" if ":" in args.host else args.host
    where = f"page http://{shown}:{args.port}/ , API docs http://{shown}:{args.port}/docs ; Ctrl-C stops"
    if args.workers > 1:
        try:
            listener = bind(args.host, args.port)
        except OSError as error:
            raise CommandError(f"cannot listen on {args.host}:{args.port}: {error}") from error
        print(
            f"egtr serve: {checkpoint}, {args.workers} worker processes; {where}", file=sys.stderr, flush=True
        )
        return run_workers(args.workers, listener, serve_worker, (args, limits, args.workers))
    app, checkpoint, predictor = load_app(args, limits)
    print(
        f"egtr serve: {checkpoint} on {predictor.device}, batches of up to {limits.max_batch}; {where}",
        file=sys.stderr,
        flush=True,
    )
    serve(app, args.host, args.port, args.log_level)
    return 0
