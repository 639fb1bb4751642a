"""Dialplan expressions as Asterisk evaluates them for AGI: ``${VAR}``, nested ``${FUNC(...)}``.

Functions modelled: ``SHARED(name[,channel])`` (channel = unique id or name), ``BASE64_ENCODE``,
``BASE64_DECODE`` (both absent when func_base64 is "not loaded"), ``CALLERID(num)``; builtins
``UNIQUEID`` and ``CHANNEL``. An unknown function reads as empty, like Asterisk's "not registered".
"""
from __future__ import annotations

import base64
import binascii
from typing import TYPE_CHECKING, Optional

if TYPE_CHECKING:  # pragma: no cover
    from tests.support.asterisk_channel import AsteriskChannel


class Expressions:
    """Reads, substitutes and writes names on one channel (``variables``: whose ``${VAR}``)."""

    def __init__(self, channel: AsteriskChannel, variables: dict[str, str]) -> None:
        self._channel = channel
        self._variables = variables

    def substitute(self, text: str) -> str:
        """``ast_str_substitute_variables``: every ``${...}`` replaced, innermost first."""
        out = []
        i = 0
        while True:
            start = text.find("${", i)
            if start < 0:
                out.append(text[i:])
                return "".join(out)
            out.append(text[i:start])
            end = _closing_brace(text, start + 2)
            if end < 0:  # no closing brace: Asterisk leaves the rest as it is
                out.append(text[start:])
                return "".join(out)
            out.append(self.read(self.substitute(text[start + 2:end])) or "")
            i = end + 1

    def read(self, name: str) -> Optional[str]:
        """A variable or a function call; ``None`` when unset or when the function fails."""
        if name.endswith(")") and "(" in name:
            function, _, argument = name[:-1].partition("(")
            return self._call(function, argument)
        if name in self._variables:
            return self._variables[name]
        return {"UNIQUEID": self._channel.uniqueid, "CHANNEL": self._channel.name}.get(name)

    def write(self, name: str, value: str) -> None:
        """``Set(name=value)``: a variable, or ``SHARED(var[,channel])``."""
        if name.startswith("SHARED(") and name.endswith(")"):
            variable, _, target = name[7:-1].partition(",")
            store = self._channel.shared_store(target, create=True)
            if store is not None:
                store[variable] = value
            return
        self._variables[name] = value

    def _call(self, function: str, argument: str) -> Optional[str]:
        if function == "SHARED":
            variable, _, target = argument.partition(",")
            store = self._channel.shared_store(target)
            return None if store is None else store.get(variable, "")
        if function in ("BASE64_ENCODE", "BASE64_DECODE") and not self._channel.base64_loaded:
            return None
        if function == "BASE64_ENCODE":
            return base64.b64encode(argument.encode("utf-8", "surrogateescape")).decode("ascii")
        if function == "BASE64_DECODE":
            try:
                return base64.b64decode(argument).decode("utf-8", "surrogateescape")
            except (binascii.Error, ValueError):
                return ""
        if function == "CALLERID" and argument in ("num", "number"):
            return self._channel.callerid
        return None


def _closing_brace(text: str, position: int) -> int:
    """Index of the ``}`` closing a ``${`` whose body starts at ``position``; -1 when none."""
    depth = 1
    while position < len(text):
        char = text[position]
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                return position
        position += 1
    return -1
