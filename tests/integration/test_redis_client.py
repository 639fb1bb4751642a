"""The shared Redis client (adapters/redis_client): bursts wait for a connection, failures are typed."""
from __future__ import annotations

import asyncio

import pytest

from callflow.adapters.redis_client import make_redis_client, timed_round_trip
from tests.conftest import REDIS_URL

pytestmark = pytest.mark.integration


class StoreDown(Exception):
    """Stands for a port's 'unavailable' error."""


async def test_a_burst_larger_than_the_pool_waits_instead_of_failing():
    """50 round trips on a pool of 2 all succeed: callers queue for a connection ("Too many connections" never)."""
    client = make_redis_client(REDIS_URL, timeout_s=2.0, max_connections=2)
    try:
        replies = await asyncio.gather(*(timed_round_trip("ping", client.ping(), 2.0, StoreDown) for _ in range(50)))
        assert replies == [True] * 50
    finally:
        await client.aclose()


async def test_no_redis_is_the_ports_error_within_the_timeout():
    """Nothing listening: the caller's error type, well within the timeout given."""
    client = make_redis_client("redis://127.0.0.1:1/0", timeout_s=0.3, max_connections=2)
    loop = asyncio.get_running_loop()
    started = loop.time()
    try:
        with pytest.raises(StoreDown):
            await timed_round_trip("ping", client.ping(), 0.3, StoreDown)
        assert loop.time() - started < 0.3 + 0.2
    finally:
        await client.aclose()
