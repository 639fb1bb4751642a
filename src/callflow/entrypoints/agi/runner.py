"""How the server runs a route: within its deadline, falling back to its safe defaults (ADR 0011)."""
from __future__ import annotations

import asyncio

from callflow.entrypoints.agi.fastagi import FastAgiSession
from callflow.entrypoints.agi.observe import log
from callflow.entrypoints.agi.session import AgiSessionClosed, Route
from callflow.entrypoints.agi.timebox import TimeBoxExpired, timebox


class RouteRunner:
    """Serves one route's sessions.

    Rule: a session admitted under the cap gets ``handle`` until ``started_at + deadline_s``
    (counted from accept: the caller hears dead air from the moment Asterisk connected). On
    deadline or error, and at once for a session over the cap, ``fallback`` gets ``grace_s`` to set
    the safe defaults. A closed connection ends the session without a fallback (nobody to tell).
    """

    def __init__(self, route: Route, grace_s: float) -> None:
        for method in (route.handle, route.fallback):
            if not asyncio.iscoroutinefunction(method):
                raise TypeError(f"AGI route {route.name!r}: {method.__name__} must be an async method")
        if route.deadline_s <= 0:
            raise ValueError(f"AGI route {route.name!r} needs a positive deadline, got {route.deadline_s!r}")
        self.route = route
        self.grace_s = grace_s

    async def serve(self, session: FastAgiSession) -> None:
        if not session.admitted:
            await self._fall_back(session, "overloaded")
            return
        session.deadline_at = session.started_at + self.route.deadline_s
        try:
            with timebox(session.remaining()):
                await self.route.handle(session)
        except TimeBoxExpired:
            await self._fall_back(session, "deadline")
        except AgiSessionClosed:
            raise
        except Exception:
            log.exception("agi route failed")
            await self._fall_back(session, "error")

    async def _fall_back(self, session: FastAgiSession, reason: str) -> None:
        session.outcome = reason
        session.set_deadline_in(self.grace_s)
        try:
            with timebox(self.grace_s):
                await self.route.fallback(session, reason)
        except TimeBoxExpired:
            log.warning("agi fallback ran out of time", reason=reason, grace_ms=self.grace_s * 1000.0)
        except AgiSessionClosed:
            raise
        except Exception:
            log.exception("agi fallback failed", reason=reason)
