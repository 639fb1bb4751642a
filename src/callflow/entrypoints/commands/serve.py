"""``callflow serve``: run the FastAGI server (placeholder until the AGI server lands)."""
from __future__ import annotations

import argparse


def register(subparsers: "argparse._SubParsersAction") -> None:
    parser = subparsers.add_parser("serve", help="run the FastAGI server")
    parser.set_defaults(func=_serve)


def _serve(args: argparse.Namespace) -> int:
    raise SystemExit("callflow serve: the AGI server is not wired yet")
