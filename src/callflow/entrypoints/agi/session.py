"""What a route sees of one FastAGI session, and what a route must provide.

The protocol layer (``fastagi.py``) implements ``AgiSession`` over a socket; tests may implement it
with a scripted fake. Routes depend only on this module.
"""
from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from typing import NamedTuple, Optional


class AgiReply(NamedTuple):
    """One final reply of Asterisk to one command (an immutable value, cheap to build).

    ``code`` is 200, 510, 511, 520...; ``result`` the text after ``result=`` (``None`` when absent);
    ``data`` the text in the parentheses (``None`` when there were none; may hold spaces, ``)``,
    ``=`` and non-ASCII; the literal ``hangup`` is just a value); ``extra`` what follows the
    parentheses; ``usage`` the lines of a multi-line 520 usage reply.
    """

    code: int
    result: Optional[str] = None
    data: Optional[str] = None
    extra: str = ""
    usage: tuple[str, ...] = ()
    raw: str = ""

    @property
    def ok(self) -> bool:
        return self.code == 200


class AgiSessionClosed(Exception):
    """Asterisk closed the connection (EOF): the session is over, nothing more can be said."""


class AgiCommandRejected(Exception):
    """Asterisk refused a command (510 unknown, 511 dead channel, 520 bad syntax)."""

    def __init__(self, reply: AgiReply) -> None:
        super().__init__(f"Asterisk answered {reply.code} {reply.extra}".rstrip())
        self.reply = reply


class AgiSession(abc.ABC):
    """One FastAGI session: the ``agi_*`` header block and a one-command-at-a-time channel."""

    #: the ``agi_*`` header block, decoded (invalid UTF-8 replaced), keys as sent (``agi_callerid``...)
    env: Mapping[str, str]
    #: ``agi_network_script`` without its query string (``checkphone?x=1`` -> ``checkphone``)
    route: str
    #: the query string's parameters (last value wins)
    query: Mapping[str, str]
    #: ``agi_arg_1``... in order (``args[0]`` is ``agi_arg_1``)
    args: list[str]
    #: the peer address as ``host:port``
    peer: str

    @property
    @abc.abstractmethod
    def hung_up(self) -> bool:
        """True once Asterisk said ``HANGUP`` (the channel is dead; GET/SET VARIABLE still work)."""

    @abc.abstractmethod
    def remaining(self) -> float:
        """Seconds left before the session's deadline (never negative)."""

    @abc.abstractmethod
    async def command(self, line: str) -> AgiReply:
        """Send one command and read its final reply (past ``100 Trying``, unsolicited ``HANGUP``).

        Raises ``AgiSessionClosed`` on EOF. Never pipelines: one command at a time.
        """

    @abc.abstractmethod
    async def get_variable(self, name: str) -> Optional[str]:
        """``GET VARIABLE name``: the value, or ``None`` when unset (``200 result=0``).

        Asterisk truncates the value at 1023 bytes. Raises ``AgiCommandRejected`` on 510/511/520.
        """

    @abc.abstractmethod
    async def get_full_variable(self, expression: str) -> Optional[str]:
        """``GET FULL VARIABLE expression``: the substituted text, ``None`` on ``result=0``.

        An unset variable and an empty one both give ``""``. Raises ``AgiCommandRejected``.
        """

    @abc.abstractmethod
    async def set_variable(self, name: str, value: str) -> bool:
        """``SET VARIABLE name value``, quoted when needed (``\\`` and ``"`` escaped).

        True on ``200 result=1``. ``ValueError`` for a value holding a line break or NUL, or a
        command longer than Asterisk reads in one line (2047 bytes).
        """


    async def set_variables(self, pairs: Sequence[tuple[str, str]]) -> list[bool]:
        """``SET VARIABLE`` for each ``(name, value)``, in order, one at a time; True for each set.

        An implementation may send them faster (``FastAgiSession``: from the reply callbacks) but
        never two at once.
        """
        return [await self.set_variable(name, value) for name, value in pairs]


class Route(abc.ABC):
    """A named AGI route. The server calls ``handle`` within the route's deadline.

    When the deadline runs out, the server is over its session cap, or ``handle`` raised, the
    server calls ``fallback`` (bounded by a short grace period) to set the safe defaults.
    """

    name: str
    deadline_s: float

    @abc.abstractmethod
    async def handle(self, session: AgiSession) -> None:
        """Serve one session: read what is needed, set the result variables."""

    @abc.abstractmethod
    async def fallback(self, session: AgiSession, reason: str) -> None:
        """Set the safe defaults quickly; ``reason`` is ``deadline``, ``overloaded`` or ``error``."""


RouteTable = dict[str, Route]
