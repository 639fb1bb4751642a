"""The only composition root: real adapters, in-memory adapters, and the services that take either.

Entrypoints build ``Application(settings=...)`` (real) or ``Application(settings=..., adapters=
InMemoryAdapters(...))`` (tests); clients are opened by ``start_resources()`` (``serve``; tests and
tools may use ``init_resources()``) and closed by ``shutdown_resources()``.
"""
from __future__ import annotations

import asyncio
import inspect
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from dependency_injector import containers, providers

from callflow.adapters.clock import SystemClock
from callflow.adapters.delivery.event_delivery import OutboxEventDelivery
from callflow.adapters.delivery.monitor import LoggingDeliveryMonitor
from callflow.adapters.delivery.resources import (
    outbox_relay_resource,
    rabbitmq_publisher_resource,
    sqlite_outbox_resource,
)
from callflow.adapters.in_memory_call_stats import InMemoryCallStats
from callflow.adapters.in_memory_outbox import InMemoryOutbox
from callflow.adapters.in_memory_phone_lists import InMemoryPhoneLists
from callflow.adapters.in_memory_publisher import InMemoryPublisher
from callflow.adapters.redis_call_stats import RedisCallStats
from callflow.adapters.redis_client import WARM_CONNECTIONS
from callflow.adapters.redis_topology import batcher_for, phone_lists_for, redis_resource
from callflow.config import Settings
from callflow.domain.call_event_factory import CallEventFactory
from callflow.domain.policy import PhonePolicy
from callflow.service_layer.check_phone import CheckPhone
from callflow.service_layer.phone_list_admin import AddNumbers, RemoveNumber
from callflow.service_layer.record_call_event import RecordCallEvent


def _seconds(milliseconds: providers.Provider) -> providers.Callable:
    """A ``*_ms`` setting as seconds."""
    return providers.Callable(lambda ms: ms / 1000.0, milliseconds)


Adapters = TypeVar("Adapters", bound=type[containers.DeclarativeContainer])


def delivers_events(adapters: Adapters) -> Adapters:
    """Event delivery over the container's ``outbox`` and ``event_publisher``, whichever they are: the
    relay (a Resource, started with the app) and the ``event_delivery`` the use case calls."""
    declared: Any = adapters  # its providers are attributes the container class declares, unknown to a type checker
    declared.outbox_relay = providers.Resource(
        outbox_relay_resource,
        outbox=declared.outbox,
        publisher=declared.event_publisher,
        monitor=providers.Singleton(LoggingDeliveryMonitor),
        max_in_flight=declared.settings.provided.publish_max_in_flight,
        flush_timeout_s=declared.settings.provided.outbox_flush_timeout_s,
    )
    declared.event_delivery = providers.Singleton(
        OutboxEventDelivery, outbox=declared.outbox, relay=declared.outbox_relay, clock=declared.clock
    )
    return adapters


@delivers_events
class RealAdapters(containers.DeclarativeContainer):
    """Adapters that talk to the real Redis, RabbitMQ and disk (event delivery: ``delivers_events``)."""

    settings = providers.Dependency(instance_of=Settings)
    clock = providers.Singleton(SystemClock)

    # --- shared: the one Redis client (checkphone and event); one node, Sentinel or Cluster ------
    redis_timeout_s = _seconds(settings.provided.redis_timeout_ms)
    #: connections opened at start so the first calls do not pay for connecting; 0 for a one-shot command
    redis_warm_connections = providers.Object(WARM_CONNECTIONS)
    redis_client = providers.Resource(
        redis_resource,
        url=settings.provided.redis_url.get_secret_value.call(),
        timeout_s=redis_timeout_s,
        max_connections=settings.provided.redis_max_connections,
        warm_connections=redis_warm_connections,
    )
    redis_batcher = providers.Singleton(batcher_for, client=redis_client)  # one write per loop tick

    # --- checkphone: Redis phone lists ---------------------------------------------------------
    phone_lists = providers.Singleton(phone_lists_for, client=redis_client, batcher=redis_batcher)

    # --- event: Redis call stats, RabbitMQ publisher, SQLite outbox ------------------------------
    call_stats = providers.Singleton(
        RedisCallStats, client=redis_client, ttl_s=settings.provided.stats_ttl_s, timeout_s=redis_timeout_s,
        batcher=redis_batcher,
    )
    outbox = providers.Resource(
        sqlite_outbox_resource,
        path=settings.provided.outbox_file,
        clock=clock,
        synchronous=settings.provided.outbox_synchronous,
    )
    event_publisher = providers.Resource(
        rabbitmq_publisher_resource,
        urls=settings.provided.amqp_urls,
        confirm_timeout_s=_seconds(settings.provided.publish_confirm_timeout_ms),
        reconnect_interval_s=settings.provided.amqp_reconnect_interval_s,
        queue_type=settings.provided.amqp_queue_type,
    )


@delivers_events
class InMemoryAdapters(containers.DeclarativeContainer):
    """The same ports, kept in memory (real adapters, checked by the same contract suites); event
    delivery over them is the real one (``delivers_events``)."""

    settings = providers.Dependency(instance_of=Settings)
    clock = providers.Singleton(SystemClock)

    # --- checkphone ---------------------------------------------------------------------------
    phone_lists = providers.Singleton(InMemoryPhoneLists, clock=clock)

    # --- event --------------------------------------------------------------------------------
    call_stats = providers.Singleton(InMemoryCallStats, ttl_s=settings.provided.stats_ttl_s)
    outbox = providers.Singleton(InMemoryOutbox, clock=clock)
    event_publisher = providers.Singleton(InMemoryPublisher)


class Application(containers.DeclarativeContainer):
    """Services wired to whichever adapters container is given (real by default)."""

    settings = providers.Dependency(instance_of=Settings)
    adapters = providers.DependenciesContainer()

    # --- checkphone use case --------------------------------------------------------------------
    phone_policy = providers.Singleton(
        PhonePolicy, anonymous_policy=settings.provided.anonymous_policy, fail_closed=settings.provided.fail_closed
    )
    check_phone = providers.Singleton(
        CheckPhone,
        lists=adapters.phone_lists,
        policy=phone_policy,
        region=settings.provided.default_region,
        timeout_s=_seconds(settings.provided.redis_timeout_ms),
    )
    add_numbers = providers.Singleton(AddNumbers, lists=adapters.phone_lists, region=settings.provided.default_region)
    remove_number = providers.Singleton(
        RemoveNumber, lists=adapters.phone_lists, region=settings.provided.default_region
    )

    # --- event use case -------------------------------------------------------------------------
    call_event_factory = providers.Singleton(
        CallEventFactory,
        zone=providers.Callable(ZoneInfo, settings.provided.timezone),
        terminal_statuses=settings.provided.terminal_status_set,
        region=settings.provided.default_region,
    )
    record_call_event = providers.Singleton(
        RecordCallEvent,
        factory=call_event_factory,
        delivery=adapters.event_delivery,
        stats=adapters.call_stats,
        clock=adapters.clock,
    )


def build_application(settings: Settings, in_memory: bool = False) -> Application:
    """The container for ``settings``, on real adapters or in-memory ones."""
    adapters_cls = InMemoryAdapters if in_memory else RealAdapters
    adapters = adapters_cls(settings=settings)
    return Application(settings=settings, adapters=adapters)


def build_admin_application(settings: Settings) -> Application:
    """The container for a one-shot command (``callflow blacklist ...``, ``stats``): real adapters, no
    Redis connections warmed up in the background (the command makes its own round trips, and the
    server's start-up warning about an unreachable Redis would only confuse its output)."""
    adapters = RealAdapters(settings=settings)
    adapters.redis_warm_connections.override(providers.Object(0))
    return Application(settings=settings, adapters=adapters)


async def resolved(provided: Any) -> Any:
    """What a provider gives, awaited when it is an awaitable.

    dependency-injector hands out a Resource built by an async function (a client, the outbox), and
    anything that depends on one, as an awaitable, and a plain Singleton as the object itself; the
    in-memory adapters have no async Resources. Entrypoints ask through here and need not know which.
    ``init_resources()`` and ``shutdown_resources()`` likewise return an awaitable only when some
    Resource is async.
    """
    return await provided if inspect.isawaitable(provided) else provided


async def start_resources(container: containers.Container) -> None:
    """Every Resource of ``container`` started and each start ended; then the first failure, if any.

    dependency-injector's ``init_resources()`` raises at the first failed start while the others go
    on. Closing them then (``shutdown_resources()``) races the starts still running: one of them asks
    again for a Resource just closed, which opens it anew, and the shutdown goes round until its
    timeout. Waiting for every start first leaves nothing opening while the clients are closed.
    """
    starts = [resource.init() for resource in container.traverse(types=[providers.BaseResource])]
    results = await asyncio.gather(*(start for start in starts if inspect.isawaitable(start)),
                                   return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
