"""One Asterisk channel as res_agi shows it to a FastAGI server: answers one command line at a time.

Replies follow Asterisk 22 (``shared/asterisk-transcripts/probe_get_set_invalid.txt``):
``SET VARIABLE`` -> ``200 result=1``; ``GET VARIABLE`` -> ``200 result=1 (value)`` (truncated to 1023
bytes) or ``200 result=0`` when unset; ``GET FULL VARIABLE`` -> ``200 result=1 (substituted text)``
(unset and empty look the same), ``200 result=0`` for an unknown channel; a wrong argument count ->
the multi-line ``520`` usage reply; anything else -> ``510 Invalid or unknown command``.
"""
from __future__ import annotations

import re
from typing import Optional

from bench.asterisk_expr import (
    COMMON_FUNCTIONS,
    DialplanFunction,
    VariableScope,
    parse_args,
    split_function_args,
    substitute,
)

#: res_agi reads a command into a 2048-byte buffer; a longer line is split by real Asterisk
MAX_COMMAND_BYTES = 2047
#: GET VARIABLE reads into a 1024-byte buffer
GET_VARIABLE_LIMIT = 1023

_SIMPLE_SET = re.compile(r'(?i)SET VARIABLE (\S+) "([^"\\]*)"\Z')
_USAGE = {
    "SET VARIABLE": "Sets a variable to the current channel.",
    "GET VARIABLE": "Returns 0 if variablename is not set. Returns 1 if variablename is set and returns the variable in parentheses.",
    "GET FULL VARIABLE": "Returns 0 if variablename is not set or channel does not exist.",
}
OK_1 = b"200 result=1\n"
OK_0 = b"200 result=0\n"
UNKNOWN = b"510 Invalid or unknown command\n"


class Channel(VariableScope):
    """Variables of one call's channel, its shared variables, and what the server set on it."""

    def __init__(self, name: str, uniqueid: str, variables: dict[str, str], shared: dict[str, str]) -> None:
        self.name = name
        self.uniqueid = uniqueid
        self.variables = dict(variables)
        self.shared = dict(shared)
        self.set_by_server: dict[str, str] = {}
        self.commands = 0
        self.protocol_errors: list[str] = []

    # --- VariableScope --------------------------------------------------------------------------
    def variable(self, name: str) -> Optional[str]:
        if name == "UNIQUEID":
            return self.uniqueid
        if name == "CHANNEL":
            return self.name
        return self.variables.get(name)

    def function(self, name: str) -> Optional[DialplanFunction]:
        if name.upper() == "SHARED":
            return _shared
        return COMMON_FUNCTIONS.get(name.upper())

    def owns(self, channel_id: str) -> bool:
        return channel_id in ("", self.uniqueid, self.name)

    # --- commands ---------------------------------------------------------------------------------
    def answer(self, raw: bytes) -> bytes:
        """The reply of res_agi to one command line (without its ``\\n``)."""
        self.commands += 1
        if len(raw) > MAX_COMMAND_BYTES:
            self.protocol_errors.append("command longer than Asterisk's 2048-byte buffer")
        line = raw.decode("utf-8", "surrogateescape").rstrip("\r")
        simple = _SIMPLE_SET.match(line)
        if simple:
            return self._set(simple.group(1), simple.group(2))
        args = parse_args(line)
        words = [a.upper() for a in args[:3]]
        if words[:2] == ["SET", "VARIABLE"]:
            return self._set(args[2], args[3]) if len(args) == 4 else _usage("SET VARIABLE")
        if words[:2] == ["GET", "VARIABLE"]:
            return self._get(args[2]) if len(args) == 3 else _usage("GET VARIABLE")
        if words == ["GET", "FULL", "VARIABLE"]:
            if len(args) not in (4, 5):
                return _usage("GET FULL VARIABLE")
            if len(args) == 5 and not self.owns(args[4]):
                return OK_0
            return _value(substitute(args[3], self))
        if words[:1] == ["VERBOSE"] or words[:1] == ["HANGUP"]:
            return OK_1
        if words[:2] == ["CHANNEL", "STATUS"]:
            return b"200 result=6\n"  # 6 = up
        if words[:2] == ["EXEC", "MSET"]:
            return self._mset(args[2] if len(args) > 2 else "")
        if words[:1] in (["NOOP"], ["ANSWER"], ["EXEC"]):
            return OK_0
        return UNKNOWN

    def _set(self, name: str, value: str) -> bytes:
        if name.upper().startswith("SHARED(") and name.endswith(")"):
            var, _, chan = name[7:-1].partition(",")
            if self.owns(chan.strip()):
                self.shared[var.strip()] = value
            return OK_1
        self.set_by_server[name] = value
        self.variables[name] = value
        return OK_1

    def _mset(self, data: str) -> bytes:
        """``EXEC MSet NAME=VALUE,...``: callflow sends it only for values without separators, quotes
        or brackets, so splitting at ``,`` and each entry's first ``=`` reads it as Asterisk does."""
        for entry in data.split(","):
            name, equals, value = entry.partition("=")
            if equals:
                self._set(name, value)
        return OK_0

    def _get(self, name: str) -> bytes:
        if name.endswith(")") and "(" in name:
            fname, _, rest = name.partition("(")
            func = self.function(fname)
            value = func(self, rest[:-1]) if func else None
        else:
            value = self.variable(name)
        if value is None:
            return OK_0
        encoded = value.encode("utf-8", "surrogateescape")[:GET_VARIABLE_LIMIT]
        return b"200 result=1 (" + encoded + b")\n"


def _shared(scope: VariableScope, text: str) -> Optional[str]:
    assert isinstance(scope, Channel)
    parts = split_function_args(text)
    channel_id = parts[1] if len(parts) > 1 else ""
    if not scope.owns(channel_id):
        return None
    return scope.shared.get(parts[0])


def _value(value: str) -> bytes:
    return b"200 result=1 (" + value.encode("utf-8", "surrogateescape") + b")\n"


def _usage(command: str) -> bytes:
    text = "520-Invalid command syntax.  Proper usage follows:\n%s\n520 End of proper usage.\n"
    return (text % _USAGE[command]).encode()
