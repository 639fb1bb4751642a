"""``callflow stats CUSTOMER [STATUS]``: the call-status sets of a customer (``stats:calls:{customer}:{status}``)."""
from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Optional

from callflow.config import Settings
from callflow.containers import build_admin_application
from callflow.domain.identifiers import customer_id_problem, identifier_problem
from callflow.entrypoints.cli import command_help, unreachable
from callflow.entrypoints.commands.config import load_settings, mask_secret
from callflow.service_layer.ports import CallStats, CallStatsUnavailable

# no caller waits on an operator's command: give Redis more time than a live call gets
_ADMIN_REDIS_TIMEOUT_MS = 5000


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "stats", help=command_help("stats"),
        description="Without STATUS: each call status of CUSTOMER with its number of calls and when its "
                    "set expires. With STATUS: the call ids in that set, one per line. Exit status 1 "
                    "when nothing is recorded, 3 when Redis cannot be reached.",
    )
    parser.add_argument("customer", metavar="CUSTOMER", help="customer id (CUSTOMER_ID of the events)")
    parser.add_argument("status", metavar="STATUS", nargs="?", help="a call status (CALL_STATUS), e.g. ringing")
    parser.add_argument("--json", action="store_true", help="one JSON object instead of text")
    parser.set_defaults(func=_stats)


def _stats(args: argparse.Namespace) -> int:
    problem = customer_id_problem("CUSTOMER", args.customer)
    if not problem and args.status is not None:
        problem = identifier_problem("STATUS", args.status)
    if problem:
        print(f"callflow stats: {problem}", file=sys.stderr)
        return 2
    settings = load_settings().model_copy(update={"redis_timeout_ms": _ADMIN_REDIS_TIMEOUT_MS})
    return asyncio.run(_run(settings, args))


async def _run(settings: Settings, args: argparse.Namespace) -> int:
    app = build_admin_application(settings)
    try:
        stats: CallStats = await app.adapters.call_stats()
        if args.status is None:
            return await _per_status(stats, args.customer, args.json)
        return await _calls(stats, args.customer, args.status, args.json)
    except CallStatsUnavailable as exc:
        url = mask_secret(settings.redis_url.get_secret_value())
        failed = unreachable("Redis", exc, at=url)
        print(f"callflow stats: {failed}", file=sys.stderr)
        return failed.code
    finally:
        closing = app.shutdown_resources()  # a coroutine once an async resource (the client) was opened
        if closing is not None:
            await closing


async def _per_status(stats: CallStats, customer: str, as_json: bool) -> int:
    counts = await stats.counts(customer)
    expiries = {status: await stats.ttl(customer, status) for status in sorted(counts)}
    if as_json:
        statuses = {s: {"calls": counts[s], "expires_in_s": _seconds(expiries[s])} for s in sorted(counts)}
        print(json.dumps({"customer": customer, "statuses": statuses}))
    elif counts:
        lines = [f"{'STATUS':<20} {'CALLS':>8}  EXPIRES IN"]
        lines += [f"{s:<20} {counts[s]:>8}  {_duration(expiries[s])}" for s in sorted(counts)]
        print("\n".join(lines))
    if not counts:
        print(f"callflow stats: no calls recorded for customer {customer}", file=sys.stderr)
        return 1
    return 0


async def _calls(stats: CallStats, customer: str, status: str, as_json: bool) -> int:
    calls: list[str] = sorted(await stats.members(customer, status))
    if as_json:
        expiry = await stats.ttl(customer, status)
        print(json.dumps({"customer": customer, "status": status, "calls": calls,
                          "expires_in_s": _seconds(expiry)}))
    elif calls:
        print("\n".join(calls))
    if not calls:
        print(f"callflow stats: no {status} calls recorded for customer {customer}{await _hint(stats, customer, status)}",
              file=sys.stderr)
        return 1
    return 0


async def _hint(stats: CallStats, customer: str, status: str) -> str:
    """What the operator may have meant: statuses are stored as the dialplan wrote them (case counts)."""
    recorded = sorted(await stats.counts(customer))
    if not recorded:
        return ""
    near = [s for s in recorded if s.lower() == status.lower()]
    if near:
        return f" (statuses are case-sensitive: did you mean {near[0]}?)"
    return f" (statuses recorded: {', '.join(recorded)})"


def _seconds(value: Optional[float]) -> Optional[int]:
    return None if value is None else int(value)


def _duration(value: Optional[float]) -> str:
    """``23h59m12s``; ``never`` for a set without expiry."""
    if value is None:
        return "never"
    seconds = int(value)
    hours, rest = divmod(seconds, 3600)
    parts: dict[str, int] = {"h": hours, "m": rest // 60, "s": rest % 60}
    return "".join(f"{n}{unit}" for unit, n in parts.items() if n or unit == "s")
