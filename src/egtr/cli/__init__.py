"""The `egtr` command: one sub-command per module in this package.

Each command module defines `add_parser(subparsers, parents)` and sets `func(args) -> int` on its parser.
Exit codes: 0 success; 1 finished but some inputs were bad; 2 usage or fatal error (one line, no
traceback unless --debug).
"""

from __future__ import annotations

import argparse
import importlib
import sys

from egtr.cli.errors import CommandError

COMMAND_MODULES = (
    "demo",
    "train",
    "evaluate",
    "predict",
    "serve",
    "export",
    "data",
    "info",
    "benchmark",
    "ablate",
    "analyze",
)


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", help="show full tracebacks on errors (default: off)")
    parser = argparse.ArgumentParser(
        prog="egtr",
        description="EGTR scene graph generation: train, evaluate, predict, explain.",
        parents=[common],
    )
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"egtr.cli.{name}").add_parser(subparsers, [common])
    return parser


def main(argv: list[str] | None = None) -> int:
    from egtr.memory import keep_freed_memory

    parser = build_parser()
    args = parser.parse_args(argv)
    keep_freed_memory()  # fewer page faults in every command that runs a model
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print(f"egtr {args.command}: interrupted", file=sys.stderr)
        return 2
    except (CommandError, OSError, ValueError, RuntimeError) as error:
        if args.debug:
            raise
        message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        print(f"egtr {args.command}: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
