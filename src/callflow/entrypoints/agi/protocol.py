"""The FastAGI wire format, pure (no I/O): header block, reply lines, command quoting.

Facts come from sessions recorded from Asterisk 22 (``tests/support/transcripts/``) and res_agi.c:
a reply's data runs to the LAST ``)``; ``HANGUP`` may arrive unsolicited before any reply;
``100 ...`` is provisional; ``520-`` opens a usage block closed by ``520 End of proper usage.``;
Asterisk reads a command into a 2048-byte buffer and treats the rest of a longer line as a
second command, so longer commands would shift every later reply.
"""
from __future__ import annotations

from typing import NamedTuple, Optional
from urllib.parse import parse_qsl

from callflow.entrypoints.agi.session import AgiReply

#: res_agi reads a command with fgets into char[AGI_BUF_LEN=2048]: 2047 bytes including the newline
MAX_COMMAND_BYTES = 2047
#: characters Asterisk's parse_args treats specially: they force quoting
_SPECIAL = frozenset(' \t"\\')


class AgiProtocolError(Exception):
    """Asterisk sent something that cannot be read as AGI (the session cannot go on)."""


class AgiHeader(NamedTuple):
    """The ``agi_*`` block Asterisk sends first, decoded."""

    env: dict[str, str]
    route: str
    query: dict[str, str]
    args: list[str]


def parse_header(block: bytes) -> AgiHeader:
    """Parse the header block (``key: value`` lines); invalid UTF-8 is replaced, not fatal; CRLF line
    ends are read as LF."""
    text = block.decode("utf-8", "replace")
    if "\r" in text:
        text = text.replace("\r\n", "\n")
    lines = text.split("\n")
    env: dict[str, str] = dict(line.split(": ", 1) for line in lines if ": " in line)
    env.pop("", None)
    route, query = split_script(env.get("agi_network_script", ""))
    args: list[str] = []
    while True:
        arg = env.get(f"agi_arg_{len(args) + 1}")
        if arg is None:
            break
        args.append(arg)
    return AgiHeader(env=env, route=route, query=query, args=args)


def split_script(script: str) -> tuple[str, dict[str, str]]:
    """``checkphone?x=1`` -> (``checkphone``, {``x``: ``1``}); the last value of a key wins."""
    path, _, query_string = script.partition("?")
    query = dict(parse_qsl(query_string, keep_blank_values=True)) if query_string else {}
    return path.strip("/"), query


def parse_reply_line(line: str) -> AgiReply:
    """``200 result=N [(data)] [extra]``, ``510 ...``: data runs to the last ``)``."""
    code = int(line[:3])
    if line[4:11] != "result=":
        return AgiReply(code, None, None, line[4:], (), line)
    result, _, tail = line[11:].partition(" ")
    data: Optional[str] = None
    if tail[:1] == "(":
        close = tail.rfind(")")
        if close > 0:
            data, tail = tail[1:close], tail[close + 1:].strip()
    return AgiReply(code, result, data, tail, (), line)


def _is_reply(line: str) -> bool:
    return len(line) >= 3 and line[:3].isdigit() and (len(line) == 3 or line[3] in " -")


class ReplyReader:
    """Fed the lines Asterisk sends, one at a time; yields each command's final reply.

    Reads past unsolicited ``HANGUP`` (recording ``hung_up``) and ``100`` provisional replies;
    collects a ``NNN-`` block until its ``NNN `` line; joins a reply whose ``(data`` has no ``)``
    yet with the following lines (a value holding a newline). Other lines are counted in
    ``unexpected`` and skipped, so replies never shift.
    """

    __slots__ = ("hung_up", "unexpected", "_max_chars", "_block", "_partial")

    def __init__(self, max_chars: int = 262144) -> None:
        self.hung_up = False
        self.unexpected = 0
        self._max_chars = max_chars
        self._block: Optional[list[str]] = None  # [first line, usage lines...] of a NNN- block
        self._partial: Optional[list[str]] = None  # lines of a reply whose data is not closed yet

    @property
    def idle(self) -> bool:
        """True when no multi-line reply is half read."""
        return self._block is None and self._partial is None

    def feed(self, line: str) -> Optional[AgiReply]:
        if line[:4] == "200 " and self._partial is None and self._block is None and (
            ")" in line or " (" not in line
        ):
            return parse_reply_line(line)  # the common case, first
        if self._partial is not None:
            return self._continue_data(line)
        if self._block is not None:
            return self._continue_block(line)
        if line == "HANGUP":
            self.hung_up = True
            return None
        if not _is_reply(line):
            self.unexpected += 1
            return None
        if line[3:4] == "-":
            self._block = [line]
            return None
        if line.startswith("100"):
            return None
        if line[:3] == "200" and " (" in line and ")" not in line:
            self._partial = [line]
            return None
        return parse_reply_line(line)

    def _continue_block(self, line: str) -> Optional[AgiReply]:
        block = self._block
        assert block is not None
        if line[:4] == block[0][:3] + " ":
            self._block = None
            return AgiReply(code=int(line[:3]), extra=block[0][4:], usage=tuple(block[1:]), raw=block[0])
        block.append(line)
        self._check_size(block)
        return None

    def _continue_data(self, line: str) -> Optional[AgiReply]:
        partial = self._partial
        assert partial is not None
        partial.append(line)
        if ")" not in line:
            self._check_size(partial)
            return None
        self._partial = None
        return parse_reply_line("\n".join(partial))

    def _check_size(self, lines: list[str]) -> None:
        if sum(len(part) for part in lines) > self._max_chars:
            raise AgiProtocolError(f"multi-line reply longer than {self._max_chars} characters")


def quote_argument(value: str) -> str:
    """Quote ``value`` for Asterisk's parse_args when needed (``\\`` and ``"`` escaped).

    Plain words go as they are (``ok``), anything else in double quotes (``"a b"``, ``""``).
    A line break or NUL cannot travel inside a command: ``ValueError``.
    """
    if "\n" in value or "\r" in value or "\0" in value:
        raise ValueError(f"an AGI argument cannot hold a line break or NUL: {value[:40]!r}")
    if value and _SPECIAL.isdisjoint(value):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def command_line(verb: str, *arguments: str) -> bytes:
    """``verb`` and its arguments, each quoted when needed, as one command line's bytes."""
    data = (verb + " " + " ".join(map(quote_argument, arguments))).encode("utf-8", "replace") + b"\n"
    if len(data) > MAX_COMMAND_BYTES:
        raise ValueError(f"AGI command of {len(data)} bytes; Asterisk reads at most {MAX_COMMAND_BYTES}")
    return data


def encode_command(command: str) -> bytes:
    """The bytes of one command line; refuses what Asterisk would split into two commands."""
    if "\n" in command or "\r" in command:
        raise ValueError(f"one AGI command per line: {command[:60]!r}")
    data = command.encode("utf-8", "replace") + b"\n"
    if len(data) > MAX_COMMAND_BYTES:
        raise ValueError(f"AGI command of {len(data)} bytes; Asterisk reads at most {MAX_COMMAND_BYTES}")
    return data
