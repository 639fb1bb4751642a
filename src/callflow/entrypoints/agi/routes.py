"""The route table the server serves: ``ROUTES``, one entry per AGI route (docs/reference.md, AGI variables).

A route module offers ``build_<name>_route(app) -> Route`` (``app``: the container from
``callflow.containers.build_application``, resources already initialised; the builder may be async).
A route that cannot be built stops the start: a server that silently lacked a route would answer
every such call ERROR.
"""
from __future__ import annotations

from collections.abc import Awaitable, Mapping
from typing import Any, Callable, Union

from callflow.config import Settings
from callflow.containers import resolved
from callflow.entrypoints.agi.checkphone import build_checkphone_route
from callflow.entrypoints.agi.event import build_event_route
from callflow.entrypoints.agi.session import Route, RouteTable

RouteBuilder = Callable[[Any], Union[Route, Awaitable[Route]]]

ROUTES: Mapping[str, RouteBuilder] = {
    "checkphone": build_checkphone_route,
    "event": build_event_route,
}


async def build_routes(app: Any, settings: Settings, builders: Mapping[str, RouteBuilder] = ROUTES) -> RouteTable:
    """Every route of ``builders`` (``ROUTES`` unless a test gives its own), built from ``app``."""
    routes: RouteTable = {}
    for name, build in builders.items():
        route = await resolved(build(app))
        if not isinstance(route, Route):
            raise TypeError(f"AGI route {name!r}: {build.__qualname__} built {route!r}, not a Route")
        if route.name != name:
            raise ValueError(f"AGI route {name!r}: {build.__qualname__} built the route {route.name!r}")
        routes[name] = route
    return routes
