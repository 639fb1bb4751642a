"""The CallStats contract, run against Redis (both recording paths) and the in-memory twin."""
from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from callflow import metrics
from callflow.adapters.in_memory_call_stats import InMemoryCallStats
from callflow.adapters.redis_call_stats import RedisCallStats, stats_key
from callflow.adapters.redis_client import make_redis_client
from callflow.domain.errors import InvalidEvent
from callflow.service_layer.ports import CallStats, CallStatsUnavailable
from tests.conftest import REDIS_URL

TTL_S = 100


class CallStatsContract:
    """Behaviour every CallStats adapter must show. ``customer`` is unique per test."""

    @pytest.fixture
    def customer(self) -> str:
        return "c-" + uuid.uuid4().hex[:12]

    @pytest.fixture
    async def stats(self, customer: str) -> AsyncIterator[CallStats]:
        raise NotImplementedError
        yield

    async def advance(self, seconds: float) -> None:
        """Let ``seconds`` pass for the adapter."""
        raise NotImplementedError

    async def test_recorded_calls_are_members(self, stats: CallStats, customer: str) -> None:
        """Each recorded call id is a member of its customer's status set, once."""
        for call_id in ("1752899481.313", "1752899481.314", "1752899481.313"):
            await stats.record(customer, "ringing", call_id)
        assert await stats.members(customer, "ringing") == {"1752899481.313", "1752899481.314"}
        assert await stats.members(customer, "hangup") == set()

    async def test_counts_per_status_for_one_customer_only(self, stats: CallStats, customer: str) -> None:
        """Counts cover every status of the customer and nothing of a customer whose id extends it."""
        await stats.record(customer, "ringing", "1.1")
        await stats.record(customer, "ringing", "1.2")
        await stats.record(customer, "hangup", "1.1")
        await stats.record(customer + "x", "ringing", "9.9")
        assert await stats.counts(customer) == {"ringing": 2, "hangup": 1}
        assert await stats.counts("c-" + uuid.uuid4().hex) == {}

    async def test_expiry_is_set_when_the_set_is_created(self, stats: CallStats, customer: str) -> None:
        """A new set expires ttl_s after its first call; a missing set has no ttl."""
        assert await stats.ttl(customer, "ringing") is None
        await stats.record(customer, "ringing", "1.1")
        ttl = await stats.ttl(customer, "ringing")
        assert ttl is not None and TTL_S - 5 < ttl <= TTL_S

    async def test_later_calls_do_not_extend_the_expiry(self, stats: CallStats, customer: str) -> None:
        """Recording into an existing set leaves its expiry running (memory stays bounded)."""
        await stats.record(customer, "ringing", "1.1")
        first = await stats.ttl(customer, "ringing")
        await self.advance(0.3)
        await stats.record(customer, "ringing", "1.2")
        later = await stats.ttl(customer, "ringing")
        assert first is not None and later is not None and later <= first - 0.2

    async def test_unsafe_ids_never_build_a_key(self, stats: CallStats, customer: str) -> None:
        """Customer, status or call id outside [A-Za-z0-9_.-] is refused before any key exists."""
        for args in (("a b", "ringing", "1.1"), (customer, "ring*", "1.1"), (customer, "ringing", "1\n2"),
                     ("", "ringing", "1.1"), (customer, "ringing", "x" * 300)):
            with pytest.raises(InvalidEvent):
                await stats.record(*args)
        assert await stats.counts(customer) == {}


class TestInMemoryCallStats(CallStatsContract):
    @pytest.fixture
    async def stats(self, customer: str) -> AsyncIterator[CallStats]:
        self._now = 1000.0
        yield InMemoryCallStats(ttl_s=TTL_S, monotonic=lambda: self._now)

    async def advance(self, seconds: float) -> None:
        self._now += seconds

    async def test_a_set_is_gone_once_expired(self, stats: CallStats, customer: str) -> None:
        """After ttl_s the set and its count are gone; the next call starts a new one."""
        await stats.record(customer, "ringing", "1.1")
        await self.advance(TTL_S)
        assert await stats.members(customer, "ringing") == set() and await stats.counts(customer) == {}
        await stats.record(customer, "ringing", "1.2")
        assert await stats.members(customer, "ringing") == {"1.2"}


@pytest.mark.integration
class TestRedisCallStats(CallStatsContract):
    expire_nx = True

    @pytest.fixture
    async def client(self, customer: str) -> AsyncIterator[Redis]:
        client = make_redis_client(REDIS_URL, timeout_s=2.0, max_connections=8)
        yield client
        keys: list[bytes] = [k async for k in client.scan_iter(match=f"stats:calls:{customer}*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()

    @pytest.fixture
    async def stats(self, client: Redis) -> AsyncIterator[CallStats]:
        yield RedisCallStats(client, ttl_s=TTL_S, timeout_s=2.0, expire_nx=self.expire_nx)

    async def advance(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    async def test_a_set_without_expiry_gets_one(self, stats: CallStats, client: Redis, customer: str) -> None:
        """A set written before expiries existed (no TTL) gets one at its next call."""
        await client.sadd(stats_key(customer, "ringing"), "0.1")
        await stats.record(customer, "ringing", "1.1")
        ttl = await stats.ttl(customer, "ringing")
        assert ttl is not None and ttl <= TTL_S

    async def test_a_set_is_gone_once_expired(self, client: Redis, customer: str) -> None:
        """With a 1 s expiry the set disappears from Redis after a second."""
        short = RedisCallStats(client, ttl_s=1, timeout_s=2.0, expire_nx=self.expire_nx)
        await short.record(customer, "ringing", "1.1")
        await asyncio.sleep(1.2)
        assert await short.counts(customer) == {}


@pytest.mark.integration
class TestRedisCallStatsScript(TestRedisCallStats):
    """The one-round-trip Lua path used on servers older than Redis 7.0."""

    expire_nx = False


@pytest.mark.integration
async def test_unreachable_redis_is_unavailable_and_counted() -> None:
    """No Redis listening: CallStatsUnavailable within the timeout, and the error is counted."""
    client = make_redis_client("redis://127.0.0.1:1/0", timeout_s=0.3, max_connections=2)
    stats = RedisCallStats(client, ttl_s=TTL_S, timeout_s=0.3)
    before = metrics.REDIS_ERRORS.labels(op="stats_record")._value.get()
    with pytest.raises(CallStatsUnavailable):
        await stats.record("c1", "ringing", "1.1")
    assert metrics.REDIS_ERRORS.labels(op="stats_record")._value.get() == before + 1
    await client.aclose()
