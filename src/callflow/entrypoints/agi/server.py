"""The FastAGI server: who may connect, how many at once, shedding and a graceful drain (ADR 0011,
0013-0016).

    server = AgiServer(settings, routes)      # routes: build_routes(app, settings)
    host, port = await server.start()         # agi_port=0 binds an ephemeral port
    ...
    await server.drain()                      # stop accepting, finish in-flight, cut the rest

Decisions: ADR 0017 (closed when too far behind), 0080 (silent connections hold no session).
"""
from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any, Optional

from callflow import metrics
from callflow.config import Settings
from callflow.entrypoints.agi.access import RejectionLog, SourceNetworks
from callflow.entrypoints.agi.connection import AgiConnection
from callflow.entrypoints.agi.fastagi import AgiLimits, FastAgiApplication, FastAgiSession
from callflow.entrypoints.agi.header_phase import ACCEPT_BATCH, HeaderPhase, HeaderPhaseFull
from callflow.entrypoints.agi.lag import LoopLag
from callflow.entrypoints.agi.listener import Listener, bind
from callflow.entrypoints.agi.observe import log
from callflow.entrypoints.agi.protocol import parse_header
from callflow.entrypoints.agi.runner import RouteRunner
from callflow.entrypoints.agi.session import RouteTable
from callflow.entrypoints.agi.timebox import TimeBoxExpired, timebox

Served = Optional[tuple[FastAgiSession, "asyncio.Task[None]"]]
_LAST_WAIT_S = 1.0  # after cancelling what still runs at the end of a drain
_GONE = object()


class AgiServer:
    """Accepts Asterisk's connections and serves each with its route (async context manager)."""

    def __init__(self, settings: Settings, routes: RouteTable, reuse_port: bool = False) -> None:
        self._settings = settings
        self._reuse_port = reuse_port  # a worker process: the port is shared with the other workers
        self._limits = AgiLimits.from_settings(settings)
        self._lag = LoopLag()
        self._app = FastAgiApplication(self._limits)
        for name, route in routes.items():
            runner = RouteRunner(route, self._limits.grace_s, self._lag.behind_s,
                                 settings.overload_lag_fraction, self._shed)
            self._app.add_route(name, runner.serve)
        self._sources = SourceNetworks(settings.allowed_network_list)
        self._rejections = RejectionLog()
        self._live: dict[AgiConnection, Served] = {}  # connections in flight, with their session once read
        # waiting for their header: bounded apart, never counted as sessions
        self._header_phase = HeaderPhase(settings.max_header_connections, settings.max_header_connections_per_peer)
        self._sessions = 0  # connections whose header is complete: what max_sessions bounds
        self._idle: Optional[asyncio.Event] = None
        self._listener: Optional[Listener] = None
        self.draining = False

    @property
    def in_flight(self) -> int:
        return len(self._live)

    @property
    def addresses(self) -> list[tuple[str, int]]:
        """Every (host, port) listened on (one per socket)."""
        return [] if self._listener is None else self._listener.addresses

    @property
    def port(self) -> int:
        return self.addresses[0][1]

    def behind_s(self) -> float:
        """How far behind the event loop runs now (seconds)."""
        return self._lag.behind_s()

    async def start(self) -> tuple[str, int]:
        """Bind ``agi_host:agi_port`` and start accepting; returns the first address bound."""
        settings, limits = self._settings, self._limits
        sockets = bind(settings.agi_host, settings.agi_port, settings.listen_backlog, self._reuse_port)
        loop = asyncio.get_running_loop()
        self._listener = Listener(lambda: AgiConnection(self, limits, loop), sockets,
                                  batch=min(ACCEPT_BATCH, settings.max_header_connections))
        self._lag.start()
        metrics.SESSIONS_IN_FLIGHT.set_function(lambda: self._sessions)  # read at scrape time, free per call
        metrics.EVENT_LOOP_LAG.set_function(self._lag.behind_s)
        log.info("agi server listening", addresses=[f"{h}:{p}" for h, p in self.addresses],
                 routes=self._app.route_names(), max_sessions=settings.max_sessions)
        return self.addresses[0]

    # --- what AgiConnection asks ------------------------------------------------------------------
    def admit(self, connection: AgiConnection, peername: Any) -> Optional[bool]:
        """None: refuse (closed at once); True: wait for its header. A waiting connection holds no
        session slot; over the header-phase bounds the oldest waiting one is closed."""
        host = peername[0] if isinstance(peername, tuple) else ""
        if not self._sources.allows(host):
            self._refuse("source_not_allowed", host)
            return None
        if self.draining:
            self._refuse("draining", host)
            return None
        try:
            displaced = self._header_phase.add(connection, host, connection.started_at)
        except HeaderPhaseFull:  # a burst larger than the bound, none waiting long: this one goes
            self._refuse("header_phase_full", host)
            return None
        for waiting in displaced:  # HeaderPhase keeps them as Hashable; they are our AgiConnections
            metrics.REJECTED_CONNECTIONS.labels("header_displaced").inc()
            self._rejections.note("header_displaced", host, len(self._live))
            waiting.abort()  # type: ignore[attr-defined]
            self.release(waiting)  # type: ignore[arg-type]
        self._live[connection] = None
        return True

    def on_header(self, connection: AgiConnection, block: bytes) -> None:
        """The header is complete: a session now, served in full or, over the cap, by the fallback."""
        self._header_phase.discard(connection)
        admitted = self._sessions < self._settings.max_sessions
        if not admitted:  # answered at once by the route's fallback, never queued
            metrics.REJECTED_CONNECTIONS.labels("overloaded").inc()
            self._rejections.note("overloaded", connection.peer, self._sessions)
        connection.admitted = admitted
        self._sessions += 1
        session = self._app.session(connection, parse_header(block))
        self._live[connection] = (session, connection.loop.create_task(self._serve(connection, session)))

    def release(self, connection: AgiConnection) -> None:
        served = self._live.pop(connection, _GONE)
        if served is _GONE:
            return
        if served is None:
            self._header_phase.discard(connection)
        else:
            self._sessions -= 1
        if not self._live and self._idle is not None:
            self._idle.set()

    async def _serve(self, connection: AgiConnection, session: FastAgiSession) -> None:
        try:
            await self._app.serve(session)
        except asyncio.CancelledError:
            pass  # cut by drain() or the loop's shutdown
        finally:
            connection.close()
            self.release(connection)

    def _refuse(self, reason: str, host: str) -> None:
        """Count and log a connection turned away; ``admit`` then answers None (close it at once)."""
        metrics.REJECTED_CONNECTIONS.labels(reason).inc()
        self._rejections.note(reason, host, len(self._live))

    def _shed(self, session: FastAgiSession, reason: str) -> None:
        """``loop_lag``: answered by the fallback; ``overloaded_closed``: closed without a word."""
        metrics.REJECTED_CONNECTIONS.labels(reason).inc()
        self._rejections.note(reason, session.peer, len(self._live))

    # --- drain ------------------------------------------------------------------------------------
    async def drain(self, timeout_s: Optional[float] = None) -> int:
        """Stop accepting, let sessions in flight finish for up to ``timeout_s`` (default
        ``drain_timeout_s``), then cut the rest: each gets its route's fallback within the grace,
        then is closed. Returns how many sessions were cut."""
        timeout = self._settings.drain_timeout_s if timeout_s is None else timeout_s
        self.draining = True
        if self._listener is not None:
            self._listener.close()
        log.info("agi server draining", in_flight=len(self._live), timeout_s=timeout)
        cut = 0
        if not await self._wait_idle(timeout):
            cut = len(self._live)
            self._cut_all()
            grace = self._limits.grace_s
            if not await self._wait_idle(grace + grace / 2):  # a fallback waiting on a reply it awaited first
                self._abort_all()
                if not await self._wait_idle(_LAST_WAIT_S):
                    log.warning("agi sessions still running after the drain", in_flight=len(self._live))
        self._lag.stop()
        log.info("agi server stopped", cut=cut)
        return cut

    def _cut_all(self) -> None:
        for connection, served in list(self._live.items()):
            if served is None:
                connection.abort()  # still in its header: nothing to answer yet
                self.release(connection)
            else:
                served[0].cut_short()

    def _abort_all(self) -> None:
        """A session waiting on Asterisk reads EOF; one waiting on something else is cancelled."""
        for connection, served in list(self._live.items()):
            connection.abort()
            if served is not None:
                served[1].cancel()

    async def _wait_idle(self, timeout: float) -> bool:
        if not self._live:
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

    async def __aenter__(self) -> AgiServer:
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
