"""``callflow blacklist|vip add|remove|list|check|import|export``: the phone lists checkphone reads."""
from __future__ import annotations

import argparse
import asyncio
import sys

from callflow.containers import Application, build_admin_application
from callflow.entrypoints.cli import add_command_group, unreachable
from callflow.entrypoints.commands import lists_verbs as verbs
from callflow.entrypoints.commands.config import load_settings, mask_secret
from callflow.service_layer.phone_list_admin import BLACKLIST, LIST_NAMES
from callflow.service_layer.ports import PhoneListsUnavailable

# no caller waits on an operator's command: give Redis more time than a live call gets
_ADMIN_REDIS_TIMEOUT_MS = 5000
_DESCRIPTION = (
    "Numbers are read exactly as checkphone reads them and stored in canonical form (84912406496 for "
    "0912406496, +84912406496, 0084912406496); remove deletes every form checkphone would find. Exit "
    "status: 0 done, 1 not listed / not there, 2 bad input (numbers refused are reported, the others are "
    "still added), 3 Redis cannot be reached."
)
_TTL_HELP = "seconds the entry lasts (default CALLFLOW_BLACKLIST_TTL_S, 86400; 0 = until removed)"


def register(subparsers: argparse._SubParsersAction) -> None:
    for name in LIST_NAMES:
        _register_list(subparsers, name)


def _register_list(subparsers: argparse._SubParsersAction, name: str) -> None:
    sub_parsers = add_command_group(subparsers, name, _DESCRIPTION, "list_verb")

    def verb(verb_name: str, run: verbs.Verb, summary: str, description: str,
             writes: bool = False) -> argparse.ArgumentParser:
        sub = sub_parsers.add_parser(verb_name, help=summary, description=description)
        sub.set_defaults(func=lambda args: _run(args, run), list_name=name)
        if writes and name == BLACKLIST:
            sub.add_argument("--ttl", type=_ttl, metavar="SECONDS", help=_TTL_HELP)
        return sub

    sub = verb("add", verbs.add, f"add numbers to the {verbs.label(name)}",
               f"Add each NUMBER (any written form) to the {verbs.label(name)}. A number already there is "
               "reported as such" + (" and its expiry starts again." if name == BLACKLIST else "."), writes=True)
    sub.add_argument("numbers", nargs="+", metavar="NUMBER")
    sub = verb("remove", verbs.remove, f"remove numbers from the {verbs.label(name)}",
               f"Remove each NUMBER from the {verbs.label(name)}, in every form it may be stored under. Exit 1 when one "
               "of them was not there.")
    sub.add_argument("numbers", nargs="+", metavar="NUMBER")
    verb("list", verbs.list_numbers, f"print the {verbs.label(name)}, one number per line",
         f"Print every number on the {verbs.label(name)} as stored, one per line, sorted.")
    sub = verb("check", verbs.check, f"is a number on the {verbs.label(name)}? (exit 0 yes, 1 no)",
               "Print the policy checkphone would give NUMBER now. Exit 0 when it is on the "
               f"{verbs.label(name)}, 1 when it is not, 2 when it is not a number, 3 when Redis cannot be reached.")
    sub.add_argument("number", metavar="NUMBER")
    sub = verb("import", verbs.import_file, f"add the numbers of a CSV file to the {verbs.label(name)}",
               "Add the number in the first column of each row of FILE ('-': standard input); a header "
               "row and blank rows are skipped. Columns are separated by ',' (or ';' or a tab, as "
               "spreadsheets write them in many locales). With a header 'number,ttl_s' (what export "
               "writes for the blacklist), each row's ttl_s is its TTL in seconds (0: until removed) and "
               "--ttl applies to rows without one. Bad rows are reported by line number and the others "
               "are added (exit 2 when any was refused). Progress goes to standard error.", writes=True)
    sub.add_argument("file", metavar="FILE")
    sub = verb("export", verbs.export_file, f"write the {verbs.label(name)} as CSV",
               f"Write the {verbs.label(name)} as CSV (a 'number' header, one number per row"
               + ("; a ttl_s column with each entry's seconds left, 0 for no expiry, which import restores"
                  if name == BLACKLIST else "")
               + ") to FILE, or to standard output. FILE is only replaced once the export is complete.")
    sub.add_argument("file", metavar="FILE", nargs="?")


def _ttl(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of seconds") from None
    if value < 0:
        raise argparse.ArgumentTypeError("a TTL is 0 (no expiry) or a number of seconds")
    return value


def _run(args: argparse.Namespace, verb: verbs.Verb) -> int:
    settings = load_settings().model_copy(update={"redis_timeout_ms": _ADMIN_REDIS_TIMEOUT_MS})
    if args.list_name == BLACKLIST and getattr(args, "ttl", 0) is None:
        args.ttl = settings.blacklist_ttl_s
    return asyncio.run(_with_application(build_admin_application(settings), verb, args))


async def _with_application(app: Application, verb: verbs.Verb, args: argparse.Namespace) -> int:
    try:
        return await verb(app, args)
    except PhoneListsUnavailable as exc:
        url = mask_secret(app.settings().redis_url.get_secret_value())
        failed = unreachable("Redis", exc, at=url)
        print(f"callflow {args.list_name}: {failed}", file=sys.stderr)
        return failed.code
    finally:
        closing = app.shutdown_resources()  # a coroutine once the async Redis client was opened
        if closing is not None:
            await closing
