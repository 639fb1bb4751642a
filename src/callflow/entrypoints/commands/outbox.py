"""``callflow outbox status``: events held in the local outbox, not yet confirmed by RabbitMQ.

Reads the SQLite file beside a running server (no lock taken, nothing created, nothing changed).
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import Optional

from callflow.adapters.clock import SystemClock
from callflow.adapters.sqlite_outbox_store import NotAnOutbox, read_status
from callflow.entrypoints.cli import EXIT_UNAVAILABLE, EXIT_USAGE, add_command_group
from callflow.entrypoints.commands.config import load_settings
from callflow.service_layer.ports import OutboxUnavailable


def register(subparsers: "argparse._SubParsersAction") -> None:
    verbs = add_command_group(subparsers, "outbox", "Inspect the outbox (CALLFLOW_OUTBOX_PATH): the durable "
                              "queue of events that Asterisk was told OK for and RabbitMQ has not confirmed yet.",
                              "outbox_verb")
    status = verbs.add_parser(
        "status", help="how many events wait, and for how long",
        description="Print the outbox file, the number of events waiting and the age of the oldest. "
                    "Safe beside a running server. Exit status 2 when the file is not an outbox (corrupt), "
                    "3 when it cannot be read.",
    )
    status.add_argument("--json", action="store_true", help="one JSON object instead of text")
    status.set_defaults(func=_status)


def _status(args: argparse.Namespace) -> int:
    settings = load_settings()
    try:
        status = read_status(settings.outbox_file, SystemClock().now().timestamp())
    except NotAnOutbox as exc:  # the file itself is wrong: nothing to wait for
        print(f"callflow outbox status: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except OutboxUnavailable as exc:
        print(f"callflow outbox status: {exc}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    if args.json:
        print(json.dumps({"location": status.location, "depth": status.depth,
                          "oldest_age_s": status.oldest_age_s}))
    else:
        print(f"outbox:  {status.location}\nwaiting: {status.depth} event(s)\n"
              f"oldest:  {_age(status.oldest_age_s)}")
    return 0


def _age(seconds: Optional[float]) -> str:
    if seconds is None:
        return "-"
    minutes, rest = divmod(seconds, 60)
    return f"{int(minutes)} min {rest:.0f} s ago" if minutes else f"{rest:.1f} s ago"
