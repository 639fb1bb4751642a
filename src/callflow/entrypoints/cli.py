"""The ``callflow`` command: one entry point, one module per verb group under ``commands/``.

Exit codes: 0 success, 1 the thing asked about is not there / check failed, 2 bad usage or input,
3 a backing service (Redis, RabbitMQ) could not be reached.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from typing import List, Optional

from callflow import __version__
from callflow.logging import configure_logging

# each module has ``register(subparsers)``; its parsers set ``func(args) -> int``
COMMAND_MODULES = (
    "callflow.entrypoints.commands.serve",
    "callflow.entrypoints.commands.stats",
    "callflow.entrypoints.commands.lists",
    "callflow.entrypoints.commands.events",
    "callflow.entrypoints.commands.outbox",
    "callflow.entrypoints.commands.config",
)

EXIT_OK, EXIT_NOT_FOUND, EXIT_USAGE, EXIT_UNAVAILABLE = 0, 1, 2, 3


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="callflow", description="FastAGI server for Asterisk call centers.")
    parser.add_argument("--version", action="version", version=f"callflow {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    # stdout carries the verbs' output (lists, CSV, JSON): log lines go to stderr, warnings and up;
    # `serve` configures its own logging
    configure_logging("WARNING", log_file=None, console=sys.stderr, fmt="console", cache=False)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # e.g. `callflow blacklist list | head`
        return 0


if __name__ == "__main__":
    sys.exit(main())
