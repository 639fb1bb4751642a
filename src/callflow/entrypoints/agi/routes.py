"""The route table the server serves: one line per route in ``ROUTE_BUILDERS``.

A route module offers ``build_<name>_route(app) -> Route`` (sync or async; ``app``: the container
from ``callflow.containers.build_application``, resources already initialised) and lists its
``"module:function"`` below. A listed route that cannot be built stops the start: a server that
silently lacks a route would answer every such call ERROR.
"""
from __future__ import annotations

import importlib
import inspect
from typing import Any, Tuple

from callflow.config import Settings
from callflow.entrypoints.agi.session import Route, RouteTable

ROUTE_BUILDERS: Tuple[str, ...] = (
    "callflow.entrypoints.agi.checkphone:build_checkphone_route",
    "callflow.entrypoints.agi.event:build_event_route",
)


async def build_routes(app: Any, settings: Settings) -> RouteTable:
    """Every route of ``ROUTE_BUILDERS``, built from ``app``, keyed by its name."""
    routes: RouteTable = {}
    for spec in ROUTE_BUILDERS:
        route = _builder(spec)(app)
        if inspect.isawaitable(route):
            route = await route
        if not isinstance(route, Route):
            raise TypeError(f"{spec} built {route!r}, not a Route")
        if route.name in routes:
            raise ValueError(f"two AGI routes named {route.name!r}")
        routes[route.name] = route
    return routes


def _builder(spec: str) -> Any:
    module_name, _, function = spec.partition(":")
    return getattr(importlib.import_module(module_name), function)
