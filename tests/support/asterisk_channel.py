"""One Asterisk channel as res_agi (Asterisk 22) answers AGI commands: a pure model, no I/O.

What it reproduces byte for byte is pinned by ``tests/unit/test_fake_asterisk_transcripts.py``
against ``asterisk-transcripts/``: parse_args quoting, GET VARIABLE (1023-byte truncation, unset ->
``result=0``), GET FULL VARIABLE (``${VAR}``, nested ``${FUNC(...)}``, unset -> ``()``, unknown
channel -> ``result=0``), SET VARIABLE (wrong argument count -> the multi-line 520), SHARED() by
unique id, 510 for unknown commands, 511 on a dead channel. Strings carry raw bytes as
surrogate escapes (``errors="surrogateescape"``) so invalid UTF-8 survives a round trip.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Optional

from tests.support.asterisk_dialplan import Expressions

MAX_GET_VARIABLE_BYTES = 1023  # res_agi's char tempstr[1024]
DEAD = "511 Command Not Permitted on a dead channel or intercept routine"
UNKNOWN = "510 Invalid or unknown command"
USAGE = {  # as Asterisk 22 prints them (the first two recorded in probe_get_set_invalid.txt)
    "set variable": ["Sets a variable to the current channel."],
    "get variable": [
        "Returns <literal>0</literal> if <replaceable>variablename</replaceable> is not set. Returns "
        "<literal>1</literal> if <replaceable>variablename</replaceable> is set and returns the variable "
        "in parentheses.",
        "Example return code: 200 result=1 (testvariable)",
    ],
    "get full variable": [
        "Evaluates the given <replaceable>expression</replaceable> against the channel specified by "
        "<replaceable>channelname</replaceable>, or the current channel if <replaceable>channelname"
        "</replaceable> is not provided.",
        "Returns <literal>0</literal> if no channel matching <replaceable>channelname</replaceable> "
        "exists, <literal>1</literal> otherwise.",
    ],
    "verbose": ["Sends <replaceable>message</replaceable> to the console via verbose message system."],
    "exec": ["Executes <replaceable>application</replaceable> with given <replaceable>options</replaceable>."],
}


def parse_args(line: str) -> list[str]:
    """res_agi.c ``parse_args``: words split on space/tab; ``"`` groups; ``\\`` escapes any character."""
    args: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    in_word = False
    for char in line:
        if char == '"' and not escaped:
            quoted = not quoted
            if quoted and not in_word:
                in_word = True  # an opening quote starts a word, even an empty one
            continue
        if char in " \t" and not quoted and not escaped:
            if in_word:
                args.append("".join(current))
                current, in_word = [], False
            continue
        if char == "\\" and not escaped:
            escaped = True
            continue
        in_word, escaped = True, False
        current.append(char)
    if in_word:
        args.append("".join(current))
    return args


@dataclass
class AsteriskChannel:
    """The channel an AGI runs on: its variables, the shared variables of the calls, its state."""

    uniqueid: str
    name: str
    variables: dict[str, str] = field(default_factory=dict)
    #: SHARED() variables per channel, keyed by unique id (or channel name)
    shared: dict[str, dict[str, str]] = field(default_factory=dict)
    #: other channels' variables by name, for ``GET FULL VARIABLE expr channel``
    channels: dict[str, dict[str, str]] = field(default_factory=dict)
    callerid: str = ""
    dead: bool = False
    base64_loaded: bool = True
    mset_loaded: bool = True  # False: EXEC MSet answers result=-2, as for a missing application
    #: lines Asterisk will send on its own (``HANGUP`` after the HANGUP command)
    unsolicited: list[str] = field(default_factory=list)

    def execute(self, line: str) -> list[str]:
        """The reply lines (without ``\\n``) Asterisk sends for one command line."""
        argv = parse_args(line)
        found = _find(argv)
        if found is None:
            return [UNKNOWN]
        words, handler, runs_dead = found
        if self.dead and not runs_dead:
            return [DEAD]
        reply = handler(self, argv)
        if reply is None:
            usage = USAGE.get(words, ["Usage not recorded."])
            return ["520-Invalid command syntax.  Proper usage follows:", *usage, "520 End of proper usage."]
        return [reply]

    def hang_up(self) -> None:
        self.dead = True

    def expressions(self, variables: Optional[dict[str, str]] = None) -> Expressions:
        return Expressions(self, self.variables if variables is None else variables)

    def shared_store(self, channel: str, create: bool = False) -> Optional[dict[str, str]]:
        """The SHARED() store of ``channel`` ('' = this one); ``None`` when the channel has none
        (unknown channel, or nothing shared on it yet: Asterisk then fails the read)."""
        key = self.uniqueid if channel in ("", self.uniqueid, self.name) else channel
        if create and key == self.uniqueid:
            return self.shared.setdefault(key, {})
        return self.shared.get(key)


def _get_variable(channel: AsteriskChannel, argv: list[str]) -> Optional[str]:
    if len(argv) != 3:
        return None
    value = channel.expressions().read(argv[2])
    if value is None:
        return "200 result=0"
    clipped = value.encode("utf-8", "surrogateescape")[:MAX_GET_VARIABLE_BYTES]
    return f"200 result=1 ({clipped.decode('utf-8', 'surrogateescape')})"


def _get_full_variable(channel: AsteriskChannel, argv: list[str]) -> Optional[str]:
    if len(argv) not in (4, 5):
        return None
    target = argv[4] if len(argv) == 5 else channel.name
    if target in (channel.name, channel.uniqueid):
        variables: Optional[dict[str, str]] = channel.variables
    else:
        variables = channel.channels.get(target)
    if variables is None:
        return "200 result=0"
    return f"200 result=1 ({channel.expressions(variables).substitute(argv[3])})"


def _set_variable(channel: AsteriskChannel, argv: list[str]) -> Optional[str]:
    if len(argv) != 4:
        return None
    channel.expressions().write(argv[2], argv[3])
    return "200 result=1"


def _exec(channel: AsteriskChannel, argv: list[str]) -> Optional[str]:
    """res_agi ``handle_exec``: the application by name (any case) with ``argv[2]`` as its data,
    later words ignored; ``result=-2`` when no such application is loaded."""
    if len(argv) < 2:
        return None
    app = argv[1].lower()
    if app == "noop":
        return "200 result=0"
    if app == "mset" and channel.mset_loaded:
        _mset(channel, argv[2] if len(argv) > 2 else "")
        return "200 result=0"
    return "200 result=-2"


def _mset(channel: AsteriskChannel, data: str) -> None:
    """MSet (``pbx_builtin_setvar_multiple``): ``AST_STANDARD_APP_ARGS`` (``,`` outside brackets and
    quotes; quotes and ``\\`` removed), then each ``NAME=VALUE`` split at its first ``=``; an
    entry without ``=`` is ignored (Asterisk logs a warning)."""
    for entry in _standard_app_args(data):
        name, equals, value = entry.partition("=")
        if equals:
            channel.expressions().write(name, value)


def _standard_app_args(data: str) -> list[str]:
    """app.c ``__ast_app_separate_args(..., ',', remove_chars=1, ...)``."""
    args: list[str] = []
    current: list[str] = []
    depth = 0
    quoted = escaped = False
    for char in data:
        if escaped:
            current.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif quoted:
            current.append(char)
        elif char in "([":
            depth += 1
            current.append(char)
        elif char in ")]" and depth:
            depth -= 1
            current.append(char)
        elif char == "," and depth == 0:
            args.append("".join(current))
            current = []
        else:
            current.append(char)
    args.append("".join(current))
    return args


def _hangup(channel: AsteriskChannel, argv: list[str]) -> Optional[str]:
    channel.hang_up()
    channel.unsolicited.append("HANGUP")  # res_agi's loop notices the hangup and says so
    return "200 result=1"


_Handler = Callable[[AsteriskChannel, list[str]], Optional[str]]
#: (words, handler, runs on a dead channel) in res_agi's table order
_COMMANDS: list[tuple[tuple[str, ...], _Handler, bool]] = [
    (("answer",), lambda c, a: "200 result=0", False),
    (("channel", "status"), lambda c, a: "200 result=6", False),
    (("exec",), _exec, True),
    (("get", "full", "variable"), _get_full_variable, True),
    (("get", "variable"), _get_variable, True),
    (("hangup",), _hangup, False),
    (("noop",), lambda c, a: "200 result=0", True),
    (("set", "variable"), _set_variable, True),
    (("verbose",), lambda c, a: "200 result=1" if len(a) >= 2 else None, True),
]


def _find(argv: list[str]) -> Optional[tuple[str, _Handler, bool]]:
    """res_agi ``find_command(argv, 0)``: every word of the entry must match, case-insensitively."""
    for words, handler, runs_dead in _COMMANDS:
        if len(argv) >= len(words) and all(a.lower() == w for a, w in zip(argv, words)):
            return " ".join(words), handler, runs_dead
    return None
