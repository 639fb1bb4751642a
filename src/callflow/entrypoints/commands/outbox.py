"""``callflow outbox status``: events held in the local outbox, not yet confirmed by RabbitMQ.

Reads the SQLite file beside a running server (no lock taken, nothing created, nothing changed);
with worker processes, every file of the family (``outbox-0.sqlite3``, ...; ADR 0111), each on its
line and their total.
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import Optional

from callflow.adapters.clock import SystemClock
from callflow.adapters.delivery.ports import OutboxStatus, OutboxUnavailable
from callflow.adapters.outbox_files import family
from callflow.adapters.sqlite_outbox_store import NotAnOutbox, read_status
from callflow.entrypoints.cli import EXIT_UNAVAILABLE, EXIT_USAGE, add_command_group
from callflow.entrypoints.commands.config import load_settings


def register(subparsers: argparse._SubParsersAction) -> None:
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
    base = settings.outbox_file
    paths = [path for _, path in family(base)] or [base]
    now = SystemClock().now().timestamp()
    try:
        statuses = [read_status(path, now) for path in paths]
    except NotAnOutbox as exc:  # the file itself is wrong: nothing to wait for
        print(f"callflow outbox status: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except OutboxUnavailable as exc:
        print(f"callflow outbox status: {exc}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    total = _total(str(base), statuses)
    if args.json:
        report = {"location": total.location, "depth": total.depth, "oldest_age_s": total.oldest_age_s}
        if len(statuses) > 1:
            report["files"] = [{"location": s.location, "depth": s.depth, "oldest_age_s": s.oldest_age_s}
                               for s in statuses]
        print(json.dumps(report))
    elif len(statuses) == 1:
        print(_text(statuses[0]))
    else:
        print("\n\n".join([_text(s) for s in statuses] + [_text(total, "total:  ")]))
    return 0


def _total(location: str, statuses: list[OutboxStatus]) -> OutboxStatus:
    if len(statuses) == 1:
        return statuses[0]
    ages = [s.oldest_age_s for s in statuses if s.oldest_age_s is not None]
    return OutboxStatus(depth=sum(s.depth for s in statuses), oldest_age_s=max(ages) if ages else None,
                        location=f"{len(statuses)} files like {location}")


def _text(status: OutboxStatus, label: str = "outbox: ") -> str:
    return f"{label} {status.location}\nwaiting: {status.depth} event(s)\noldest:  {_age(status.oldest_age_s)}"


def _age(seconds: Optional[float]) -> str:
    if seconds is None:
        return "-"
    minutes, rest = divmod(seconds, 60)
    return f"{int(minutes)} min {rest:.0f} s ago" if minutes else f"{rest:.1f} s ago"
