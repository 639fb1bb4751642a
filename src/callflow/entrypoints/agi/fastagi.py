"""FastAGI over asyncio streams: the only module that imports panoramisk (ADR 0010).

Kept from panoramisk 1.4: ``Application``'s route registry (``add_route``/``_route``) and
``Request``'s shape (``app``, ``headers``, ``reader``, ``writer``). Replaced: the connection
handler (bounded header read, EOF at any point ends cleanly), the reply reader (``protocol``:
HANGUP, 100, 520 blocks, data to the last ``)``), and ``add_route``'s ``asyncio.coroutine``
wrapping (gone in Python 3.11): only async endpoints are accepted.
"""
from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, List, Optional

from panoramisk.fast_agi import Application, Request

from callflow.entrypoints.agi import observe
from callflow.entrypoints.agi.protocol import (
    AgiHeader,
    AgiProtocolError,
    ReplyReader,
    command_line,
    encode_command,
    parse_header,
)
from callflow.entrypoints.agi.session import AgiCommandRejected, AgiReply, AgiSession, AgiSessionClosed
from callflow.entrypoints.agi.timebox import TimeBoxExpired, timebox

Endpoint = Callable[["FastAgiSession"], Awaitable[None]]


@dataclass(frozen=True)
class AgiLimits:
    """What one connection may cost: header size and time, reply line length, fallback grace."""

    max_header_bytes: int = 16384
    max_line_bytes: int = 262144
    header_timeout_s: float = 2.0
    grace_s: float = 0.2

    @classmethod
    def from_settings(cls, settings: Any) -> "AgiLimits":
        return cls(
            max_header_bytes=settings.max_header_bytes,
            max_line_bytes=settings.max_line_bytes,
            header_timeout_s=settings.header_timeout_ms / 1000.0,
            grace_s=settings.fallback_grace_ms / 1000.0,
        )


class FastAgiSession(Request, AgiSession):
    """One session: panoramisk's ``Request`` with ``send_command``/``_read_result`` replaced."""

    def __init__(self, app: "FastAgiApplication", header: AgiHeader, reader: asyncio.StreamReader,
                 writer: asyncio.StreamWriter, peer: str, started_at: float, admitted: bool = True) -> None:
        super().__init__(app, header.env, reader, writer)
        self.env, self.route, self.query, self.args = header.env, header.route, header.query, header.args
        self.peer = peer
        self.started_at = started_at
        self.deadline_at = started_at + app.limits.grace_s  # the route runner sets the route's own
        self.admitted = admitted  # False: the server was over its session cap when this call came
        self.status: Optional[str] = None  # the last CALLFLOW_STATUS set
        self.outcome = "ok"
        self._time = time.monotonic
        self._replies = ReplyReader(app.limits.max_line_bytes)
        self._pending = 0  # commands sent whose reply is not read yet (a deadline cut the read)
        self._busy = False
        self._closed: Optional[str] = None

    @property
    def hung_up(self) -> bool:
        return self._replies.hung_up

    @property
    def unexpected_lines(self) -> int:
        return self._replies.unexpected

    def remaining(self) -> float:
        return max(0.0, self.deadline_at - self._time())

    def set_deadline_in(self, seconds: float) -> None:
        """The session's deadline becomes ``seconds`` from now."""
        self.deadline_at = self._time() + seconds

    def elapsed(self) -> float:
        """Seconds since the connection was accepted."""
        return self._time() - self.started_at

    async def command(self, line: str) -> AgiReply:
        return await self.send_command(line)

    async def send_command(self, command: str) -> AgiReply:  # type: ignore[override]
        """Send one command line as it is; read its final reply."""
        return await self._exchange(encode_command(command))

    async def _exchange(self, data: bytes) -> AgiReply:
        """Send one encoded command, read its final reply; a reply a deadline left unread is read first."""
        if self._busy:
            raise RuntimeError("one AGI command at a time: await the previous command first")
        if self._closed is not None:
            raise AgiSessionClosed(self._closed)
        self._busy = True
        try:
            while self._pending:
                await self._read_result()
                self._pending -= 1
            writer = self.writer
            writer.write(data)
            self._pending = 1
            if writer.transport.get_write_buffer_size():  # Asterisk is not reading: wait (deadline-bound)
                await writer.drain()
            reply = await self._read_result()
            self._pending = 0
            return reply
        except ConnectionError as error:
            raise self._end("connection lost", "connection_lost") from error
        finally:
            self._busy = False

    async def _read_result(self) -> AgiReply:  # type: ignore[override]
        feed, readline = self._replies.feed, self.reader.readline
        while True:
            try:
                line = await readline()
            except ValueError as error:  # asyncio's LimitOverrunError: longer than max_line_bytes
                raise self._end("reply line too long", "line_oversized") from error
            if line[-1:] != b"\n":
                raise self._end("Asterisk closed the connection", "eof_mid_command")
            try:
                reply = feed(line[:-1].decode("utf-8", "replace"))
            except AgiProtocolError as error:
                raise self._end(str(error), "line_oversized") from error
            if reply is not None:
                return reply

    def _end(self, reason: str, kind: str) -> AgiSessionClosed:
        self._closed = reason
        observe.protocol_error(kind)
        return AgiSessionClosed(reason)

    async def get_variable(self, name: str) -> Optional[str]:
        reply = self._accepted(await self._exchange(command_line("GET VARIABLE", name)))
        return (reply.data or "") if reply.result == "1" else None

    async def get_full_variable(self, expression: str) -> Optional[str]:
        reply = self._accepted(await self._exchange(command_line("GET FULL VARIABLE", expression)))
        return (reply.data or "") if reply.result == "1" else None

    async def set_variable(self, name: str, value: str) -> bool:
        reply = await self._exchange(command_line("SET VARIABLE", name, value))
        done = reply.code == 200 and reply.result == "1"
        if done and name == "CALLFLOW_STATUS":
            self.status = value
        return done

    @staticmethod
    def _accepted(reply: AgiReply) -> AgiReply:
        if not reply.ok:
            raise AgiCommandRejected(reply)
        return reply


class FastAgiApplication(Application):
    """panoramisk's ``Application``: its route registry kept, its connection handler replaced."""

    def __init__(self, limits: AgiLimits) -> None:
        # Not Application.__init__: it calls asyncio.get_event_loop(), deprecated outside a loop.
        dict.__init__(self)
        self.default_encoding = "utf-8"
        self.loop = None
        self._route: "OrderedDict[str, Endpoint]" = OrderedDict()
        self.limits = limits

    def add_route(self, path: str, endpoint: Endpoint) -> None:
        """Register ``async def endpoint(session)`` for ``path``; anything else is refused."""
        if not asyncio.iscoroutinefunction(endpoint):
            raise TypeError(f"AGI route {path!r}: the endpoint must be an async function, got {endpoint!r}")
        super().add_route(path, endpoint)

    def route_names(self) -> List[str]:
        return list(self._route)

    async def handler(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                      admitted: bool = True, peer: Optional[str] = None) -> None:
        """Serve one connection: header (bounded), the route's endpoint, close. Never raises."""
        started = time.monotonic()
        peer = peer or observe.format_peer(writer.get_extra_info("peername"))
        try:
            block = await self._read_header(reader, peer)
            if block is not None:
                session = FastAgiSession(self, parse_header(block), reader, writer, peer, started, admitted)
                await self._serve(session)
        finally:
            writer.close()

    async def _read_header(self, reader: asyncio.StreamReader, peer: str) -> Optional[bytes]:
        limits = self.limits
        try:
            with timebox(limits.header_timeout_s):
                block = await reader.readuntil(b"\n\n")
        except asyncio.IncompleteReadError as error:
            return observe.header_refused("header_truncated" if error.partial else "probe", peer)
        except asyncio.LimitOverrunError:
            return observe.header_refused("header_oversized", peer)
        except TimeBoxExpired:
            return observe.header_refused("header_timeout", peer)
        except ConnectionError:
            return observe.header_refused("header_truncated", peer)
        if len(block) > limits.max_header_bytes:
            return observe.header_refused("header_oversized", peer)
        return block

    async def _serve(self, session: FastAgiSession) -> None:
        endpoint = self._route.get(session.route)
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
        session.outcome = "unknown_route"
        observe.log.warning("unknown agi route", script=session.env.get("agi_network_script", "")[:200])
        try:
            with timebox(self.limits.grace_s):
                await session.set_variable("CALLFLOW_STATUS", "ERROR")
                await session.set_variable("CALLFLOW_ERROR", "unknown-route")
        except TimeBoxExpired:
            observe.log.warning("no answer from Asterisk in time for an unknown route")
