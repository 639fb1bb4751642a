"""The FastAGI listener: who may connect, how many at once, and a graceful drain (ADR 0011).

    server = AgiServer(settings, routes)      # routes: build_routes(app, settings)
    host, port = await server.start()         # agi_port=0 binds an ephemeral port
    ...
    await server.drain()                      # stop accepting, finish in-flight, close the rest
"""
from __future__ import annotations

import asyncio
from typing import Awaitable, Dict, List, Optional, Tuple

from callflow import metrics
from callflow.config import Settings
from callflow.entrypoints.agi.access import RejectionLog, SourceNetworks
from callflow.entrypoints.agi.fastagi import AgiLimits, FastAgiApplication
from callflow.entrypoints.agi.observe import format_peer, log
from callflow.entrypoints.agi.runner import RouteRunner
from callflow.entrypoints.agi.session import RouteTable
from callflow.entrypoints.agi.timebox import TimeBoxExpired, timebox


class AgiServer:
    """Accepts Asterisk's connections and serves each with its route (async context manager)."""

    def __init__(self, settings: Settings, routes: RouteTable) -> None:
        self._settings = settings
        self._limits = AgiLimits.from_settings(settings)
        self._app = FastAgiApplication(self._limits)
        for name, route in routes.items():
            self._app.add_route(name, RouteRunner(route, self._limits.grace_s).serve)
        self._sources = SourceNetworks(settings.allowed_network_list)
        self._rejections = RejectionLog()
        self._in_flight = 0
        self._sessions: Dict[asyncio.StreamWriter, "asyncio.Task[None]"] = {}
        self._idle: Optional[asyncio.Event] = None
        self._server: Optional[asyncio.AbstractServer] = None
        self.draining = False

    @property
    def in_flight(self) -> int:
        return self._in_flight

    @property
    def addresses(self) -> List[Tuple[str, int]]:
        """Every (host, port) listened on (one per socket)."""
        if self._server is None:
            return []
        return [tuple(sock.getsockname()[:2]) for sock in self._server.sockets]  # type: ignore[misc]

    @property
    def port(self) -> int:
        return self.addresses[0][1]

    async def start(self) -> Tuple[str, int]:
        """Bind ``agi_host:agi_port`` and start accepting; returns the first address bound."""
        settings = self._settings
        self._server = await asyncio.start_server(
            self._on_connection, settings.agi_host, settings.agi_port,
            backlog=settings.listen_backlog, limit=self._limits.max_line_bytes, reuse_address=True,
        )
        metrics.SESSIONS_IN_FLIGHT.set_function(lambda: self._in_flight)  # read at scrape time, free per call
        log.info("agi server listening", addresses=[f"{h}:{p}" for h, p in self.addresses],
                 routes=self._app.route_names(), max_sessions=settings.max_sessions)
        return self.addresses[0]

    async def _on_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peername = writer.get_extra_info("peername")
        host = peername[0] if isinstance(peername, tuple) else ""
        if not self._sources.allows(host):
            return self._refuse(writer, "source_not_allowed", host)
        if self.draining:
            return self._refuse(writer, "draining", host)
        admitted = self._in_flight < self._settings.max_sessions
        if not admitted:  # answered at once by the route's fallback, never queued
            metrics.REJECTED_CONNECTIONS.labels("overloaded").inc()
            self._rejections.note("overloaded", host, self._in_flight)
        self._in_flight += 1
        task = asyncio.current_task()
        self._sessions[writer] = task  # type: ignore[assignment]
        try:
            await self._app.handler(reader, writer, admitted=admitted, peer=format_peer(peername))
        except asyncio.CancelledError:
            pass  # cut by drain() or the loop's shutdown; the handler has closed the connection
        finally:
            del self._sessions[writer]
            self._in_flight -= 1
            if self._in_flight == 0 and self._idle is not None:
                self._idle.set()

    def _refuse(self, writer: asyncio.StreamWriter, reason: str, host: str) -> None:
        writer.close()
        metrics.REJECTED_CONNECTIONS.labels(reason).inc()
        self._rejections.note(reason, host, self._in_flight)

    async def drain(self, timeout_s: Optional[float] = None) -> int:
        """Stop accepting, let sessions in flight finish for up to ``timeout_s`` (default
        ``drain_timeout_s``), then close the rest. Returns how many sessions were cut."""
        timeout = self._settings.drain_timeout_s if timeout_s is None else timeout_s
        self.draining = True
        if self._server is not None:
            self._server.close()
        log.info("agi server draining", in_flight=self._in_flight, timeout_s=timeout)
        cut = 0
        if not await self._wait_idle(timeout):
            cut = self._in_flight
            for writer in list(self._sessions):
                writer.transport.abort()  # a session waiting on Asterisk reads EOF and ends
            if not await self._wait_idle(self._limits.grace_s):
                for task in list(self._sessions.values()):
                    task.cancel()  # a session waiting on something else
                if not await self._wait_idle(1.0):
                    log.warning("agi sessions still running after the drain", in_flight=self._in_flight)
        if self._server is not None:
            await self._wait(self._server.wait_closed(), 1.0)
        log.info("agi server stopped", cut=cut)
        return cut

    async def _wait_idle(self, timeout: float) -> bool:
        if self._in_flight == 0:
            return True
        self._idle = asyncio.Event()
        return await self._wait(self._idle.wait(), timeout)

    @staticmethod
    async def _wait(awaitable: Awaitable[object], timeout: float) -> bool:
        try:
            with timebox(timeout):
                await awaitable
        except TimeBoxExpired:
            return False
        return True

    async def __aenter__(self) -> "AgiServer":
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if not self.draining:
            await self.drain(timeout_s=0.0)


async def start_agi_server(settings: Settings, routes: RouteTable) -> AgiServer:
    """Build an ``AgiServer`` for ``routes`` and start it (``settings.agi_port=0``: ephemeral port)."""
    server = AgiServer(settings, routes)
    await server.start()
    return server
