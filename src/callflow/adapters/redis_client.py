"""The one Redis client of the process (a container Resource shared by every Redis adapter).

Connections are made lazily: the service starts with Redis down and reconnects by itself. A dead
pooled connection (Redis restarted) is retried once at once on a fresh one; a timeout is not
retried: callers have deadlines of a few hundred milliseconds, and redis-py's default (3 retries with
backoff) would spend them all.
"""
from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import AsyncIterator, Awaitable
from typing import Any, TypeVar

from redis.asyncio import BlockingConnectionPool, ConnectionPool, Redis
from redis.asyncio.connection import AbstractConnection
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import AuthenticationError, RedisClusterException, RedisError
from redis.exceptions import ConnectionError as RedisConnectionError

from callflow import metrics
from callflow.logging import get_logger

T = TypeVar("T")
_log = get_logger("callflow.redis")
#: connections opened in the background when the client starts: the command batcher's lane and one
#: for the rest (readiness probe, admin), so the first burst of calls does not wait for a connect
WARM_CONNECTIONS = 2
_CONNECTION_PARAMETERS = inspect.signature(AbstractConnection.__init__).parameters
#: no CLIENT SETINFO on each new connection (one round trip more, and redis-py 8 reads its own
#: version from the package metadata per connection): ``driver_info=None`` from redis-py 7.1,
#: ``lib_name=None, lib_version=None`` before (deprecated after)
NO_CLIENT_SETINFO: dict[str, Any] = (
    {"driver_info": None} if "driver_info" in _CONNECTION_PARAMETERS else {"lib_name": None, "lib_version": None}
)
#: redis-py < 5.3 requires a command name to hand out a connection; later versions warn when given one
_NAMED_LEASE = inspect.signature(BlockingConnectionPool.get_connection).parameters["command_name"].default \
    is inspect.Parameter.empty


def make_redis_client(url: str, timeout_s: float, max_connections: int) -> Redis:
    """A client whose every round trip is bounded by ``timeout_s`` (bytes in, bytes out).

    The pool blocks (up to ``timeout_s``) for a free connection when all ``max_connections`` are in
    use: redis-py's default pool fails at once with "Too many connections", which a burst of calls
    larger than the pool would turn into errors.
    """
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=timeout_s,
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        retry=Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
        health_check_interval=30,
        **NO_CLIENT_SETINFO,
    )
    return Redis.from_pool(pool)  # the client owns the pool: aclose() closes both


async def redis_client_resource(url: str, timeout_s: float, max_connections: int,
                                warm_connections: int = WARM_CONNECTIONS) -> AsyncIterator[Redis]:
    """Container Resource: the client for the process's life, closed on ``shutdown_resources()``.

    A few connections are opened in the background at once, so the first burst of calls does not
    pay for connecting; start-up never waits for them (Redis may be down). A command of the CLI
    asks for none (``warm_connections=0``): it reports a failure itself, once.
    """
    client = make_redis_client(url, timeout_s, max_connections)
    warming = asyncio.ensure_future(warm_up(client.connection_pool, min(warm_connections, max_connections)))
    try:
        yield client
    finally:
        warming.cancel()
        await client.aclose()


async def lease_connection(pool: ConnectionPool) -> AbstractConnection:
    """A connected connection of ``pool``, the caller's until it gives it back with ``pool.release``."""
    return await (pool.get_connection("_") if _NAMED_LEASE else pool.get_connection())


async def warm_up(pool: ConnectionPool, count: int) -> None:
    """Opens ``count`` connections of ``pool`` and leaves them idle in it; Redis down: gives up quietly."""
    leased: list[AbstractConnection] = []
    try:
        for _ in range(count):
            leased.append(await lease_connection(pool))
    except AuthenticationError as failure:
        _log.error("redis refused the password (authentication failed): checkphone answers DEGRADED until "
                   "CALLFLOW_REDIS_URL is fixed", error=f"{type(failure).__name__}: {failure}")
    except (RedisError, OSError) as failure:
        _log.warning("redis not reachable at start: checkphone answers DEGRADED until it is; reconnecting on use",
                     error=f"{type(failure).__name__}: {failure}")
    finally:
        for connection in leased:
            await pool.release(connection)


async def timed_round_trip(op: str, awaitable: Awaitable[T], timeout_s: float, unavailable: type[Exception]) -> T:
    """Await one Redis round trip within ``timeout_s``, recording its latency and failures under
    ``op``; any Redis, socket or timeout failure is raised as ``unavailable`` (the port's error)."""
    started = time.perf_counter()
    try:
        return await asyncio.wait_for(awaitable, max(timeout_s, 0.0))
    except (RedisError, RedisClusterException, OSError, asyncio.TimeoutError) as failure:  # a cluster's "no node"
        metrics.REDIS_ERRORS.labels(op=op).inc()
        raise unavailable(f"redis {op}: {type(failure).__name__}: {failure}") from failure
    finally:
        metrics.REDIS_SECONDS.labels(op=op).observe(time.perf_counter() - started)


def as_text(value: Any) -> str:
    """A reply of a client that does not decode responses, as text."""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
