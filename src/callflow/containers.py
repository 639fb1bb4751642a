"""The only composition root: real adapters, in-memory adapters, and the services that take either.

Entrypoints build ``Application(settings=...)`` (real) or ``Application(settings=..., adapters=
InMemoryAdapters(...))`` (tests); clients are opened by ``init_resources()`` and closed by
``shutdown_resources()``.
"""
from __future__ import annotations

from dependency_injector import containers, providers

from callflow.adapters.clock import SystemClock
from callflow.config import Settings


class RealAdapters(containers.DeclarativeContainer):
    """Adapters that talk to the real Redis, RabbitMQ and disk."""

    settings = providers.Dependency(instance_of=Settings)
    clock = providers.Singleton(SystemClock)

    # --- checkphone: Redis phone lists ---------------------------------------------------------

    # --- event: Redis call stats, RabbitMQ publisher, SQLite outbox ------------------------------


class InMemoryAdapters(containers.DeclarativeContainer):
    """The same ports, kept in memory (real adapters, checked by the same contract suites)."""

    settings = providers.Dependency(instance_of=Settings)
    clock = providers.Singleton(SystemClock)

    # --- checkphone ---------------------------------------------------------------------------

    # --- event --------------------------------------------------------------------------------


class Application(containers.DeclarativeContainer):
    """Services wired to whichever adapters container is given (real by default)."""

    settings = providers.Dependency(instance_of=Settings)
    adapters = providers.DependenciesContainer()

    # --- checkphone use case --------------------------------------------------------------------

    # --- event use case -------------------------------------------------------------------------


def build_application(settings: Settings, in_memory: bool = False) -> Application:
    """The container for ``settings``, on real adapters or in-memory ones."""
    adapters_cls = InMemoryAdapters if in_memory else RealAdapters
    adapters = adapters_cls(settings=settings)
    return Application(settings=settings, adapters=adapters)
