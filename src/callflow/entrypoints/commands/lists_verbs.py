"""The verbs of ``callflow blacklist|vip``: each ``async (app, args) -> exit status``."""
from __future__ import annotations

import argparse
import sys
from collections.abc import AsyncIterator, Awaitable, Iterator
from typing import Callable, Optional

from callflow.containers import Application, resolved
from callflow.domain.errors import InvalidPhoneNumber
from callflow.domain.policy import DEGRADED, ERROR
from callflow.entrypoints.cli import EXIT_NOT_FOUND, EXIT_OK, EXIT_USAGE
from callflow.entrypoints.commands.lists_csv import (
    UnreadableCsv,
    numbers_in,
    opened_for_reading,
    opened_for_writing,
    write_numbers,
    write_numbers_with_ttl,
)
from callflow.service_layer.phone_list_admin import BLACKLIST, AddReport
from callflow.service_layer.ports import PhoneListsUnavailable

Verb = Callable[[Application, argparse.Namespace], Awaitable[int]]
PROGRESS_EVERY = 10000  # numbers between two progress lines of an import
EXPIRY_PAGE = 1000  # blacklist entries whose expiry an export asks in one round trip
#: how a list is named in a sentence
LABELS = {BLACKLIST: "blacklist", "vip": "VIP list"}


def label(list_name: str) -> str:
    return LABELS.get(list_name, list_name)


async def add(app: Application, args: argparse.Namespace) -> int:
    seen: set[str] = set()  # a number given twice is "already there" the second time

    def added(report: AddReport, batch: tuple[str, ...], already: frozenset[str]) -> None:
        for number in batch:
            if number in already or number in seen:
                print(f"{number} already on the {label(args.list_name)}{_renewed(args)}")
            else:
                print(f"{number} added to the {label(args.list_name)}{_lasting(args)}")
            seen.add(number)

    add_numbers = await resolved(app.add_numbers())
    report = await add_numbers.execute(args.list_name, enumerate(args.numbers, 1), _ttl(args), added)
    return _refusals(args, "add", report, "argument")


async def remove(app: Application, args: argparse.Namespace) -> int:
    remove_number = await resolved(app.remove_number())
    status = EXIT_OK
    for text in args.numbers:
        try:
            removed = await remove_number.execute(args.list_name, text)
        except InvalidPhoneNumber as exc:
            print(f"callflow {args.list_name} remove: {exc}", file=sys.stderr)
            status = EXIT_USAGE
            continue
        if removed:
            print(f"{text}: {removed} {'entry' if removed == 1 else 'entries'} removed from the "
                  f"{label(args.list_name)}")
        else:
            print(f"{text}: not on the {label(args.list_name)}", file=sys.stderr)
            status = max(status, EXIT_NOT_FOUND)
    return status


async def list_numbers(app: Application, args: argparse.Namespace) -> int:
    for number in await _sorted_members(app, args.list_name):
        print(number)
    return EXIT_OK


async def check(app: Application, args: argparse.Namespace) -> int:
    result = await (await resolved(app.check_phone())).execute(args.number)
    if result.status == DEGRADED:  # the lookup hides why: ask Redis itself, to say what went wrong
        raise PhoneListsUnavailable(await _why_unanswered(app))
    if result.status == ERROR:
        print(f"callflow {args.list_name} check: {args.number!r} is not a phone number", file=sys.stderr)
        return EXIT_USAGE
    listed = result.blacklisted if args.list_name == BLACKLIST else result.vip
    print(f"{args.number}: policy {result.policy} (blacklisted: {_yes(result.blacklisted)}, vip: {_yes(result.vip)})")
    return EXIT_OK if listed else EXIT_NOT_FOUND


async def import_file(app: Application, args: argparse.Namespace) -> int:
    shown = [0]

    def progress(report: AddReport, batch: tuple[str, ...], already: frozenset[str]) -> None:
        done = report.added + len(report.rejected)
        if done - shown[0] >= PROGRESS_EVERY:
            shown[0] = done
            print(f"callflow {args.list_name} import: {report.added} added, {len(report.rejected)} refused so far",
                  file=sys.stderr)

    add_numbers = await resolved(app.add_numbers())
    try:
        with opened_for_reading(args.file) as stream:
            report = await add_numbers.execute(args.list_name, numbers_in(stream), _ttl(args), progress)
    except (OSError, UnicodeDecodeError, UnreadableCsv) as exc:
        print(f"callflow {args.list_name} import: cannot read {args.file}: {exc} (numbers before it were added)",
              file=sys.stderr)
        return EXIT_USAGE
    status = _refusals(args, "import", report, "line")
    renewed = f" ({report.already} of them already listed, renewed)" if report.already else ""
    print(f"callflow {args.list_name} import: {report.added} added{_lasting(args)}{renewed}, "
          f"{len(report.rejected)} refused", file=sys.stderr)
    return status


async def export_file(app: Application, args: argparse.Namespace) -> int:
    numbers = await _sorted_members(app, args.list_name)
    expiries = await _expiries(app, numbers) if args.list_name == BLACKLIST else None
    try:
        with opened_for_writing(args.file) as stream:
            if expiries is None:
                count = write_numbers(stream, numbers)
            else:  # each entry's remaining time: an import of this file restores it
                count = write_numbers_with_ttl(stream, ((n, expiries[n]) for n in numbers if n in expiries))
    except OSError as exc:
        print(f"callflow {args.list_name} export: cannot write {args.file}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.file not in (None, "-"):
        print(f"callflow {args.list_name} export: {count} numbers written to {args.file}", file=sys.stderr)
    return EXIT_OK


async def _expiries(app: Application, numbers: list[str]) -> dict[str, Optional[int]]:
    lists = await resolved(app.adapters.phone_lists())
    expiries: dict[str, Optional[int]] = {}
    for page in _pages(numbers, EXPIRY_PAGE):
        expiries.update(await lists.blacklist_expiries(page))  # an entry gone meanwhile is left out
    return expiries


def _pages(items: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


async def _why_unanswered(app: Application) -> str:
    client = await resolved(app.adapters.redis_client())
    try:
        await client.ping()
    except Exception as exc:  # whatever the client raises is the reason to report (and, chained, its kind)
        raise PhoneListsUnavailable(f"{type(exc).__name__}: {exc}") from exc
    return "no answer within the timeout"


async def _sorted_members(app: Application, list_name: str) -> list[str]:
    lists = await resolved(app.adapters.phone_lists())
    members: AsyncIterator[str] = lists.blacklist_members() if list_name == BLACKLIST else lists.vip_members()
    return sorted({number async for number in members})  # a SCAN may return a key twice


def _refusals(args: argparse.Namespace, verb: str, report: AddReport, where: str) -> int:
    for refused in report.rejected:
        print(f"callflow {args.list_name} {verb}: {where} {refused.line}: {refused.reason}", file=sys.stderr)
    return EXIT_USAGE if report.rejected else EXIT_OK


def _ttl(args: argparse.Namespace) -> int:
    return getattr(args, "ttl", None) or 0


def _lasting(args: argparse.Namespace) -> str:
    if args.list_name != BLACKLIST:
        return ""
    return f" for {_duration(args.ttl)}" if args.ttl else " until removed"


def _renewed(args: argparse.Namespace) -> str:
    if args.list_name != BLACKLIST:
        return ""
    return f": it now expires in {_duration(args.ttl)}" if args.ttl else ": it no longer expires"


def _duration(seconds: int) -> str:
    """``86400`` → ``24 h (86400 s)``: the blacklist's default TTL in words an operator reads at once."""
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{seconds // 3600} h ({seconds} s)"
    if seconds >= 60 and seconds % 60 == 0:
        return f"{seconds // 60} min ({seconds} s)"
    return f"{seconds} s"


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"

