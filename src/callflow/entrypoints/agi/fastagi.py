"""FastAGI sessions and routing: the session a route talks to, and the application that runs a route.

The transport is ``connection.AgiConnection`` (an ``asyncio.Protocol``: bounded header, EOF at any
point ends cleanly) and the reply reader is ``protocol`` (HANGUP, 100, 520 blocks, data to the last
``)``); the route registry is a dict of async endpoints (ADR 0013, 0135).

Decisions: ADR 0018, 0070 (how variables are set).
"""
from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from typing import Any, Callable, Optional

from callflow.entrypoints.agi import observe
from callflow.entrypoints.agi.connection import AgiConnection
from callflow.entrypoints.agi.protocol import AgiHeader, command_line, encode_command
from callflow.entrypoints.agi.session import AgiCommandRejected, AgiReply, AgiSession, AgiSessionClosed
from callflow.entrypoints.agi.timebox import TimeBoxExpired, timebox

Endpoint = Callable[["FastAgiSession"], Awaitable[None]]
_GET, _GET_FULL, _SET, _EXEC_MSET = "GET VARIABLE", "GET FULL VARIABLE", "SET VARIABLE", "EXEC MSet"
_SET_COMMANDS: dict[tuple[str, str], bytes] = {}
_SET_COMMANDS_MAX = 512
_MSET_COMMANDS: dict[tuple[tuple[str, str], ...], bytes] = {}
#: what MSet's argument parser (``AST_STANDARD_APP_ARGS``, then ``=``) would read otherwise than
#: written: separators, quotes and escapes, nesting brackets; a value holding one is set the slow way
_MSET_UNSAFE = frozenset(',"\\()[]\r\n\0')
_MSET_MISSING = "-2"  # EXEC of an application that does not exist (or is not loaded)


@dataclass(frozen=True)
class AgiLimits:
    """What one connection may cost: header size and time, reply line length, fallback grace."""

    max_header_bytes: int = 16384
    max_line_bytes: int = 262144
    header_timeout_s: float = 2.0
    grace_s: float = 0.2

    @classmethod
    def from_settings(cls, settings: Any) -> AgiLimits:
        return cls(
            max_header_bytes=settings.max_header_bytes,
            max_line_bytes=settings.max_line_bytes,
            header_timeout_s=settings.header_timeout_ms / 1000.0,
            grace_s=settings.fallback_grace_ms / 1000.0,
        )


class FastAgiSession(AgiSession):
    """One session as routes see it, over an ``AgiConnection``; plus what the server tracks."""

    def __init__(self, connection: AgiConnection, header: AgiHeader, grace_s: float,
                 without_mset: Optional[set[str]] = None) -> None:
        """``without_mset``: the hosts known to refuse ``EXEC MSet``, shared by the server's sessions."""
        self.env, self.route, self.query, self.args = header.env, header.route, header.query, header.args
        self.connection = connection
        self.loop = connection.loop
        self.peer = connection.peer
        self.started_at = connection.started_at
        self.deadline_at = self.started_at + grace_s  # the route runner sets the route's own
        self.admitted = connection.admitted  # False: the server was over its session cap when this call came
        self.status: Optional[str] = None  # the last CALLFLOW_STATUS set
        self.outcome = "ok"
        self.deadline_box: Optional[timebox] = None  # while the route's handle runs (drain expires it)
        self.cut = False  # the drain timeout ran out: answer the fallback now
        self._without_mset = set() if without_mset is None else without_mset

    @property
    def hung_up(self) -> bool:
        return self.connection.replies.hung_up

    @property
    def unexpected_lines(self) -> int:
        return self.connection.replies.unexpected

    def remaining(self) -> float:
        return max(0.0, self.deadline_at - time.monotonic())

    def set_deadline_in(self, seconds: float) -> None:
        """The session's deadline becomes ``seconds`` from now."""
        self.deadline_at = time.monotonic() + seconds

    def elapsed(self) -> float:
        """Seconds since the connection was accepted."""
        return time.monotonic() - self.started_at

    def cut_short(self) -> None:
        """The server stops: a running ``handle`` is cut now and the route's fallback answers."""
        self.cut = True
        if self.deadline_box is not None:
            self.deadline_box.expire_now()

    async def command(self, line: str) -> AgiReply:
        return await self.connection.exchange(encode_command(line))

    async def send_command(self, command: str) -> AgiReply:
        """Send one command line as it is; read its final reply."""
        return await self.connection.exchange(encode_command(command))

    async def get_variable(self, name: str) -> Optional[str]:
        reply = _accepted(await self.connection.exchange(command_line(_GET, name)))
        return (reply.data or "") if reply.result == "1" else None

    async def get_full_variable(self, expression: str) -> Optional[str]:
        reply = _accepted(await self.connection.exchange(command_line(_GET_FULL, expression)))
        return (reply.data or "") if reply.result == "1" else None

    async def set_variable(self, name: str, value: str) -> bool:
        return self._was_set(name, value, await self.connection.exchange(_set_bytes(name, value)))

    async def set_variables(self, pairs: Sequence[tuple[str, str]]) -> list[bool]:
        """Every pair in one ``EXEC MSet`` when the values allow it and Asterisk has MSet:
        one round trip, and the dialplan finds all of them set or none. Else, or when MSet is
        missing or refused, one ``SET VARIABLE`` each, in order; a refusal is remembered
        per Asterisk host for the server's lifetime, so later sessions go the slow way at once."""
        if len(pairs) > 1:
            host = self.peer.rpartition(":")[0]
            data = None if host in self._without_mset else _mset_bytes(pairs)
            if data is not None:
                reply = await self.connection.exchange(data)
                if reply.code == 200 and reply.result == "0":
                    for name, value in pairs:
                        if name == "CALLFLOW_STATUS":
                            self.status = value
                    return [True] * len(pairs)
                if reply.result == _MSET_MISSING or reply.code in (510, 520):
                    self._without_mset.add(host)
                observe.log.warning("EXEC MSet not accepted; setting variables one at a time",
                                    reply=reply.raw[:80] or f"{reply.code} result={reply.result}")
        replies = await self.connection.exchange_all([_set_bytes(name, value) for name, value in pairs])
        return [self._was_set(name, value, reply) for (name, value), reply in zip(pairs, replies)]

    def _was_set(self, name: str, value: str, reply: AgiReply) -> bool:
        done = reply.code == 200 and reply.result == "1"
        if done and name == "CALLFLOW_STATUS":
            self.status = value
        return done


def _set_bytes(name: str, value: str) -> bytes:
    data = _SET_COMMANDS.get((name, value))
    return _set_command(name, value) if data is None else data


def _set_command(name: str, value: str) -> bytes:
    """``SET VARIABLE name value``'s bytes, remembered: routes set the same few pairs again and again."""
    data = command_line(_SET, name, value)
    if len(_SET_COMMANDS) >= _SET_COMMANDS_MAX:  # many distinct values: start over, stay bounded
        _SET_COMMANDS.clear()
    _SET_COMMANDS[(name, value)] = data
    return data


def _mset_bytes(pairs: Sequence[tuple[str, str]]) -> Optional[bytes]:
    """``EXEC MSet "N1=V1,N2=V2,..."``'s bytes, remembered like ``_set_bytes``; None when a value
    cannot travel through MSet's parser intact or the line would be too long."""
    key = tuple(pairs)
    data = _MSET_COMMANDS.get(key)
    if data is not None:
        return data
    for name, value in pairs:
        if not _MSET_UNSAFE.isdisjoint(value) or value != value.strip() or not _MSET_UNSAFE.isdisjoint(name):
            return None
    try:
        data = command_line(_EXEC_MSET, ",".join(f"{name}={value}" for name, value in pairs))
    except ValueError:
        return None
    if len(_MSET_COMMANDS) >= _SET_COMMANDS_MAX:
        _MSET_COMMANDS.clear()
    _MSET_COMMANDS[key] = data
    return data


def _accepted(reply: AgiReply) -> AgiReply:
    if reply.code != 200:
        raise AgiCommandRejected(reply)
    return reply


class FastAgiApplication:
    """The AGI routes by name, and the running of one session's route."""

    def __init__(self, limits: AgiLimits) -> None:
        self.limits = limits
        self.without_mset: set[str] = set()  # Asterisk hosts that refused EXEC MSet
        self._routes: dict[str, Endpoint] = {}

    def add_route(self, path: str, endpoint: Endpoint) -> None:
        """Register ``async def endpoint(session)`` for ``path``; anything else is refused."""
        if not asyncio.iscoroutinefunction(endpoint):
            raise TypeError(f"AGI route {path!r}: the endpoint must be an async function, got {endpoint!r}")
        if path in self._routes:
            raise ValueError(f"AGI route {path!r} is already registered")
        self._routes[path] = endpoint

    def route_names(self) -> list[str]:
        return list(self._routes)

    def session(self, connection: AgiConnection, header: AgiHeader) -> FastAgiSession:
        return FastAgiSession(connection, header, self.limits.grace_s, self.without_mset)

    async def serve(self, session: FastAgiSession) -> None:
        """Run the session's route (or answer an unknown one). Never raises but for cancellation."""
        endpoint = self._routes.get(session.route)
        with observe.session_context(session, known_route=endpoint is not None):
            try:
                await (endpoint or self._answer_unknown_route)(session)
            except AgiSessionClosed:
                if session.outcome == "ok":
                    session.outcome = "closed"
            except Exception:  # an endpoint registered without the route runner's guard
                session.outcome = "error"
                observe.log.exception("agi endpoint failed")

    async def _answer_unknown_route(self, session: FastAgiSession) -> None:
        if session.connection.header_oversized:  # no route could be read: the header was skipped
            session.outcome, error = "header_oversized", "header-too-large"
            observe.log.warning("agi header over the size limit", max_header_bytes=self.limits.max_header_bytes)
        else:
            session.outcome, error = "unknown_route", "unknown-route"
            observe.log.warning("unknown agi route", script=session.env.get("agi_network_script", "")[:200])
        try:
            with timebox(self.limits.grace_s):
                await session.set_variables((("CALLFLOW_STATUS", "ERROR"), ("CALLFLOW_ERROR", error)))
        except TimeBoxExpired:
            observe.log.warning("no answer from Asterisk in time for an unknown route")
