"""Tiny routes for testing the AGI server itself (not product routes).

``EchoRoute`` reads ``CALL_ID``, writes back what it saw and sets ``CALLFLOW_STATUS=OK``; its
fallback sets ``CALLFLOW_STATUS=DEGRADED`` and ``FALLBACK=<reason>``. ``ScriptRoute`` runs any
``async def script(session)``. Both count the sessions they served.
"""
from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Callable, Optional

from callflow.entrypoints.agi.session import AgiSession, Route

Script = Callable[[AgiSession], Awaitable[None]]


class ScriptRoute(Route):
    """Runs ``script`` as its handle; the fallback answers DEGRADED with the reason."""

    def __init__(self, script: Script, name: str = "script", deadline_s: float = 2.0) -> None:
        self.name = name
        self.deadline_s = deadline_s
        self._script = script
        self.served = 0
        self.fallbacks: list[str] = []
        self.sessions: list[AgiSession] = []

    async def handle(self, session: AgiSession) -> None:
        self.served += 1
        self.sessions.append(session)
        await self._script(session)

    async def fallback(self, session: AgiSession, reason: str) -> None:
        self.fallbacks.append(reason)
        await session.set_variable("FALLBACK", reason)
        await session.set_variable("CALLFLOW_STATUS", "DEGRADED")


async def echo(session: AgiSession) -> None:
    call_id = await session.get_variable("CALL_ID")
    await session.set_variable("SEEN", f"route={session.route} args={session.args} query={session.query} "
                                       f"call_id={call_id}")
    await session.set_variable("CALLFLOW_STATUS", "OK")


def EchoRoute(name: str = "echo", deadline_s: float = 2.0) -> ScriptRoute:  # noqa: N802 - reads as a class
    return ScriptRoute(echo, name=name, deadline_s=deadline_s)


def sleeping(seconds: float, then: Optional[Script] = None) -> Script:
    """A script that waits ``seconds`` (past a deadline, say) and then runs ``then``."""
    async def script(session: AgiSession) -> None:
        await asyncio.sleep(seconds)
        if then is not None:
            await then(session)
    return script


def held(release: asyncio.Event) -> Script:
    """A script that holds its session until ``release`` is set, then echoes."""
    async def script(session: AgiSession) -> None:
        await release.wait()
        await echo(session)
    return script
