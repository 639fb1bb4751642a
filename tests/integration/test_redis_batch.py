"""The command batcher (adapters/redis_batch): one write per tick, each caller its own reply and deadline."""
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.connection import Connection
from redis.exceptions import ResponseError

from callflow.adapters.redis_batch import CommandBatcher
from callflow.adapters.redis_client import WARM_CONNECTIONS, make_redis_client, redis_client_resource
from tests.conftest import REDIS_URL

pytestmark = pytest.mark.integration


class StoreDown(Exception):
    """Stands for a port's 'unavailable' error."""


class CountingConnection(Connection):
    """Counts the writes of ECHO commands made on connections of its class (not the connection set-up)."""

    writes = 0

    async def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        if b"ECHO" in (command if isinstance(command, bytes) else b"".join(command)):
            CountingConnection.writes += 1
        await super().send_packed_command(command, check_health)


@pytest.fixture
async def counted() -> AsyncIterator[Redis]:
    CountingConnection.writes = 0
    pool = BlockingConnectionPool.from_url(REDIS_URL, connection_class=CountingConnection, max_connections=8)
    client = Redis.from_pool(pool)
    yield client
    await client.aclose()


@pytest.fixture
async def silent_redis() -> AsyncIterator[tuple[str, list[bytes]]]:
    """A server that accepts and reads but never answers (a frozen Redis); yields its URL and what it read."""
    received: list[bytes] = []

    async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while chunk := await reader.read(65536):
            received.append(chunk)
        writer.close()

    server = await asyncio.start_server(swallow, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    yield f"redis://127.0.0.1:{port}/0", received
    server.close()


async def test_callers_of_one_tick_share_one_write_and_get_their_own_replies(counted: Redis) -> None:
    """100 callers asking at once: one write on the wire, and each caller gets the reply to its own command."""
    batcher = CommandBatcher(counted, max_lanes=4)
    replies = await asyncio.gather(*(batcher.round_trip("echo", [("ECHO", f"caller-{n}")], 2.0, StoreDown)
                                     for n in range(100)))
    assert replies == [[f"caller-{n}".encode()] for n in range(100)]
    assert CountingConnection.writes == 1


async def test_an_error_reply_goes_to_its_caller_only(counted: Redis) -> None:
    """A command Redis refuses is that caller's ResponseError; the callers around it get their replies."""
    batcher = CommandBatcher(counted)
    first, refused, last = await asyncio.gather(
        batcher.round_trip("echo", [("ECHO", "a")], 2.0, StoreDown),
        batcher.round_trip("bad", [("NOT-A-COMMAND",), ("ECHO", "b")], 2.0, StoreDown),
        batcher.round_trip("echo", [("ECHO", "c")], 2.0, StoreDown),
    )
    assert first == [b"a"] and last == [b"c"]
    assert isinstance(refused[0], ResponseError) and refused[1] == b"b"


async def test_under_load_batches_grow_instead_of_connections(counted: Redis) -> None:
    """Callers arriving while the only lane is busy go together in the next write: far fewer writes than callers."""
    batcher = CommandBatcher(counted, max_lanes=1)

    async def caller(n: int) -> list[Any]:
        await asyncio.sleep(0.0001 * (n % 20))
        return await batcher.round_trip("echo", [("ECHO", str(n))], 2.0, StoreDown)

    replies = await asyncio.gather(*(caller(n) for n in range(400)))
    assert replies == [[str(n).encode()] for n in range(400)]
    assert CountingConnection.writes < 100


async def test_each_caller_keeps_its_own_deadline_when_redis_never_answers(silent_redis) -> None:
    """A Redis that never answers: callers of one batch fail each at its own deadline, with the port's error."""
    url, _ = silent_redis
    client = make_redis_client(url, timeout_s=1.0, max_connections=4)
    batcher = CommandBatcher(client)
    loop = asyncio.get_running_loop()
    started = loop.time()

    async def failing_after(timeout_s: float) -> float:
        with pytest.raises(StoreDown):
            await batcher.round_trip("ping", [("PING",)], timeout_s, StoreDown)
        return loop.time() - started

    try:
        short, long = await asyncio.gather(failing_after(0.05), failing_after(0.3))
        assert 0.04 < short < 0.2 and 0.29 < long < 0.5
    finally:
        await client.aclose()


async def test_no_time_left_sends_nothing(silent_redis) -> None:
    """A caller with no time left gets the port's error at once, and no command reaches Redis."""
    url, received = silent_redis
    client = make_redis_client(url, timeout_s=1.0, max_connections=4)
    try:
        with pytest.raises(StoreDown):
            await CommandBatcher(client).round_trip("ping", [("PING",)], 0.0, StoreDown)
        await asyncio.sleep(0.05)
        assert received == []
    finally:
        await client.aclose()


async def test_new_connections_send_no_client_setinfo(silent_redis) -> None:
    """The client opens connections without CLIENT SETINFO: the first bytes Redis reads are the caller's command."""
    url, received = silent_redis
    client = make_redis_client(url, timeout_s=1.0, max_connections=4)
    try:
        with pytest.raises(StoreDown):
            await CommandBatcher(client).round_trip("ping", [("PING",)], 0.1, StoreDown)
        assert b"".join(received) == b"*1\r\n$4\r\nPING\r\n"
    finally:
        await client.aclose()


async def test_the_client_resource_opens_a_few_connections_in_the_background() -> None:
    """Started, the client resource has connections ready shortly after; with no Redis it starts at once."""
    resource = redis_client_resource(REDIS_URL, timeout_s=1.0, max_connections=8)
    client = await resource.__anext__()
    try:
        for _ in range(100):
            if len(client.connection_pool._available_connections) >= WARM_CONNECTIONS:
                break
            await asyncio.sleep(0.01)
        assert len(client.connection_pool._available_connections) == WARM_CONNECTIONS
    finally:
        await resource.aclose()

    loop = asyncio.get_running_loop()
    started = loop.time()
    nowhere = redis_client_resource("redis://127.0.0.1:1/0", timeout_s=1.0, max_connections=8)
    await nowhere.__anext__()
    assert loop.time() - started < 0.05
    await nowhere.aclose()
