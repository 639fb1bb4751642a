"""The ``callflow`` command: one entry point, one module per verb group under ``commands/``.

Exit codes: 0 success, 1 the thing asked about is not there / check failed, 2 bad usage or input,
3 a backing service (Redis, RabbitMQ) could not be reached.

One error path (ADR 0083): whatever a verb raises ends as ONE line on stderr and an exit code, never
a traceback: ``CommandFailed`` says its own; bad values (``ValueError``, CSV and decoding errors)
and a refused password are 2; a service out of reach is 3; anything else is 1, "unexpected".

Decisions: ADR 0046 (the CLI imports only the command it runs).
"""
from __future__ import annotations

import argparse
import importlib
import signal
import sys
import threading
from collections.abc import Iterator
from typing import Optional

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
#: each command's one-line help and the module that registers it: a command's module (and the
#: libraries it needs: Redis, RabbitMQ, the container) is imported only when that command runs
COMMANDS: dict[str, tuple[str, str]] = {
    "serve": ("run the FastAGI server", COMMAND_MODULES[0]),
    "stats": ("calls of a customer per status (Redis stats:calls:* sets)", COMMAND_MODULES[1]),
    "blacklist": ("blocked numbers (Redis phone:blacklist:*, entries expire)", COMMAND_MODULES[2]),
    "vip": ("VIP numbers (Redis set phone:vip)", COMMAND_MODULES[2]),
    "events": ("follow call events on RabbitMQ", COMMAND_MODULES[3]),
    "outbox": ("the local outbox of events not yet confirmed by RabbitMQ", COMMAND_MODULES[4]),
    "config": ("show the configuration in effect", COMMAND_MODULES[5]),
}
_EVERY_COMMAND = "*"

EXIT_OK, EXIT_NOT_FOUND, EXIT_USAGE, EXIT_UNAVAILABLE = 0, 1, 2, 3
#: exception class names (anywhere in the chain) meaning the service refused our credentials; names,
#: so that this module imports neither redis nor aiormq (a verb loads only what it uses)
_AUTHENTICATION_ERRORS = frozenset({"AuthenticationError", "AuthenticationWrongNumberOfArgsError",
                                    "ProbableAuthenticationError", "AuthenticationFailed"})


class CommandFailed(Exception):
    """A verb cannot do what was asked: ``str(self)`` is the one line to print, ``code`` the exit status."""

    def __init__(self, message: str, code: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.code = code


def _chain(error: BaseException) -> Iterator[BaseException]:
    seen = set()
    current: Optional[BaseException] = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def is_authentication_failure(error: BaseException) -> bool:
    """True when ``error`` or what caused it is a refused password (Redis, RabbitMQ)."""
    return any(cls.__name__ in _AUTHENTICATION_ERRORS or "ACCESS_REFUSED" in str(link)
               for link in _chain(error) for cls in type(link).__mro__)


def unreachable(service: str, error: BaseException, at: str = "") -> CommandFailed:
    """A backing service failed: a refused password is bad input (2), anything else unreachable (3).
    ``at``: where it was asked (a URL, password masked)."""
    where = f" at {at}" if at else ""
    if is_authentication_failure(error):
        return CommandFailed(f"{service}{where} authentication failed (check the password in the URL): "
                             f"{_one_line(error)}", EXIT_USAGE)
    return CommandFailed(f"{service} cannot be reached{where}: {_one_line(error)}", EXIT_UNAVAILABLE)


def failure_of(error: BaseException) -> CommandFailed:
    """The one line and exit status for an exception a verb did not handle itself."""
    if isinstance(error, CommandFailed):
        return error
    if is_authentication_failure(error):
        return unreachable("the service", error)
    if isinstance(error, (ValueError, UnicodeError)) or type(error).__module__ == "_csv":
        return CommandFailed(f"bad input: {_one_line(error)}", EXIT_USAGE)
    if isinstance(error, (ConnectionError, TimeoutError)):
        return CommandFailed(f"cannot be reached: {_one_line(error)}", EXIT_UNAVAILABLE)
    return CommandFailed(f"unexpected error: {type(error).__name__}: {_one_line(error)}", EXIT_NOT_FOUND)


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= 300 else text[:300] + "..."


def command_help(name: str) -> str:
    return COMMANDS[name][0]


def add_command_group(subparsers: argparse._SubParsersAction, name: str, description: str,
                      verb_dest: str) -> argparse._SubParsersAction:
    """``callflow NAME VERB ...``: the command, its help from ``COMMANDS``; returns its verbs."""
    parser = subparsers.add_parser(name, help=command_help(name), description=description)
    verbs = parser.add_subparsers(dest=verb_dest, metavar="VERB")
    verbs.required = True
    return verbs


def build_parser(command: Optional[str] = _EVERY_COMMAND) -> argparse.ArgumentParser:
    """The whole command tree; with ``command``, only that command's module is imported and the
    others are listed by name and help (``callflow --help`` imports none; None: none either)."""
    parser = argparse.ArgumentParser(prog="callflow", description="FastAGI server for Asterisk call centers.")
    parser.add_argument("--version", action="version", version=f"callflow {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    wanted = set(COMMAND_MODULES) if command == _EVERY_COMMAND else (
        {COMMANDS[command][1]} if command in COMMANDS else set())
    for module in COMMAND_MODULES:
        if module in wanted:
            importlib.import_module(module).register(subparsers)
    for name, (summary, _) in COMMANDS.items():
        if name not in subparsers.choices:
            subparsers.add_parser(name, help=summary)
    return parser


def _command_word(argv: list[str]) -> Optional[str]:
    """The command asked for: the first argument that is not an option (the top level has only
    ``--help`` and ``--version``, which take no value)."""
    return next((arg for arg in argv if not arg.startswith("-")), None)


def _stopped_while_loading(signum: int, frame: object) -> None:
    raise SystemExit(0)


def main(argv: Optional[list[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    command = _command_word(argv)
    if command == "serve" and threading.current_thread() is threading.main_thread():
        # a stop while the server's modules load is a stop: exit 0 (serve installs its own handlers)
        signal.signal(signal.SIGTERM, _stopped_while_loading)
    parser = build_parser(command)
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
    except Exception as error:  # never a traceback: one line and the exit status it means
        failed = failure_of(error)
        print(f"callflow {command}: {failed}", file=sys.stderr)
        return failed.code


if __name__ == "__main__":
    sys.exit(main())
