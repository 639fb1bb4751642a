"""A failed start-up closes its clients only once every client's start has ended."""
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from dependency_injector import containers, providers

from callflow.containers import resolved, start_resources


def make_container(events: list[str]) -> containers.DeclarativeContainer:
    async def slow() -> AsyncIterator[str]:
        events.append("slow opening")
        await asyncio.sleep(0.05)
        events.append("slow open")
        yield "slow"
        events.append("slow closed")

    async def broken() -> AsyncIterator[str]:
        raise ValueError("bad port")
        yield "never"  # pragma: no cover - an async generator that fails on its first step

    async def user(slow: str) -> AsyncIterator[str]:
        events.append(f"user of {slow} open")
        yield "user"
        events.append("user closed")

    class Clients(containers.DeclarativeContainer):
        slow_client = providers.Resource(slow)
        broken_client = providers.Resource(broken)
        dependent = providers.Resource(user, slow=slow_client)

    return Clients()


async def test_the_failure_is_raised_once_every_start_has_ended_and_each_client_closes_once() -> None:
    events: list[str] = []
    container = make_container(events)
    with pytest.raises(ValueError, match="bad port"):
        await start_resources(container)
    assert "slow open" in events and "user of slow open" in events  # the starts ended first
    await asyncio.wait_for(resolved(container.shutdown_resources()), 2)
    assert events.count("slow opening") == 1 and events.count("slow closed") == 1
    assert events.count("user closed") == 1


async def test_the_library_call_raises_before_the_other_starts_end() -> None:
    """Why start_resources exists: init_resources() reports the failure while the slow start runs."""
    events: list[str] = []
    container = make_container(events)
    with pytest.raises(ValueError, match="bad port"):
        await container.init_resources()
    assert "slow open" not in events
    await asyncio.sleep(0.1)
    await asyncio.wait_for(resolved(container.shutdown_resources()), 2)
