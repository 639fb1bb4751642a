"""How the server runs a route: within its deadline, falling back to its safe defaults (ADR 0011,
0014, 0015), or closing at once when the loop is too far behind for a fallback (ADR 0017).

Decisions: ADR 0070 (what a fallback sends).
"""
from __future__ import annotations

import asyncio
from typing import Callable

from callflow.entrypoints.agi.fastagi import FastAgiSession
from callflow.entrypoints.agi.observe import log
from callflow.entrypoints.agi.session import AgiSessionClosed, Route
from callflow.entrypoints.agi.timebox import TimeBoxExpired, timebox


def _never_behind() -> float:
    return 0.0


class RouteRunner:
    """Serves one route's sessions.

    Rule: a session admitted under the cap gets ``handle`` until ``started_at + deadline_s``
    (counted from accept: the caller hears dead air from the moment Asterisk connected). On
    deadline or error, at once for a session over the cap or arriving while the event loop runs
    more than ``shed_fraction`` of the deadline behind (``overloaded``), and for a session the
    drain cuts (``deadline``), ``fallback`` gets ``grace_s`` to set the safe defaults. A closed
    connection ends the session without a fallback (nobody to tell). An admitted session arriving
    while the loop runs at least half the grace behind is closed without a command: each
    command of a fallback waits about that long for its reply, so a fallback (one EXEC MSet, or two
    to four SET VARIABLEs where Asterisk lacks MSet) would hardly finish within the grace;
    Asterisk goes on with the dialplan at once instead.
    """

    def __init__(self, route: Route, grace_s: float, behind_s: Callable[[], float] = _never_behind,
                 shed_fraction: float = 1.0,
                 on_shed: Callable[[FastAgiSession, str], None] = lambda s, reason: None) -> None:
        for method in (route.handle, route.fallback):
            if not asyncio.iscoroutinefunction(method):
                raise TypeError(f"AGI route {route.name!r}: {method.__name__} must be an async method")
        if route.deadline_s <= 0:
            raise ValueError(f"AGI route {route.name!r} needs a positive deadline, got {route.deadline_s!r}")
        self.route = route
        self.grace_s = grace_s
        self._behind_s = behind_s
        self._shed_after_s = shed_fraction * route.deadline_s
        self._close_after_s = grace_s / 2
        self._on_shed = on_shed

    async def serve(self, session: FastAgiSession) -> None:
        if not session.admitted:
            return await self._fall_back(session, "overloaded")
        behind_s = self._behind_s()
        if behind_s > self._shed_after_s:
            if behind_s >= self._close_after_s:  # sending nothing: the server closes the connection
                session.outcome = "overloaded_closed"
                return self._on_shed(session, "overloaded_closed")
            self._on_shed(session, "loop_lag")
            return await self._fall_back(session, "overloaded", outcome="shed")
        if session.cut:
            return await self._fall_back(session, "deadline", outcome="drained")
        session.deadline_at = session.started_at + self.route.deadline_s
        box = session.deadline_box = timebox(session.remaining(), session.loop)
        try:
            with box:
                await self.route.handle(session)
        except TimeBoxExpired:
            await self._fall_back(session, "deadline", outcome="drained" if session.cut else "deadline")
        except AgiSessionClosed:
            raise
        except Exception:
            log.exception("agi route failed")
            await self._fall_back(session, "error")
        finally:
            session.deadline_box = None

    async def _fall_back(self, session: FastAgiSession, reason: str, outcome: str = "") -> None:
        session.outcome = outcome or reason
        session.set_deadline_in(self.grace_s)
        try:
            with timebox(self.grace_s, session.loop):
                await self.route.fallback(session, reason)
        except TimeBoxExpired:
            log.warning("agi fallback ran out of time", reason=reason, grace_ms=self.grace_s * 1000.0)
        except AgiSessionClosed:
            raise
        except Exception:
            log.exception("agi fallback failed", reason=reason)
