"""The server as ``callflow serve`` builds it, for integration tests: container, route table, port 0."""
from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from callflow.config import Settings
from callflow.containers import build_application
from callflow.entrypoints.agi.routes import build_routes
from callflow.entrypoints.agi.server import AgiServer


@asynccontextmanager
async def served(settings: Settings) -> AsyncIterator[AgiServer]:
    """``AgiServer`` over every route of ``ROUTE_BUILDERS``, resources opened before and closed after."""
    app = build_application(settings)
    await app.init_resources()
    try:
        async with AgiServer(settings, await build_routes(app, settings)) as server:
            yield server
    finally:
        await app.shutdown_resources()
