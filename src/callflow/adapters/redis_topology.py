"""The process's Redis client for each form of ``CALLFLOW_REDIS_URL``: one node, Sentinel, Redis Cluster.

The composition root asks here for the client, the batcher and the phone lists; each is chosen by the
client's topology, so the one-node path is exactly that of ``redis_client`` (ADR 0022, 0024) and the
others only add what their topology needs (ADR 0100):

- **Sentinel**: redis-py's ``Sentinel.master_for``. Every new connection asks the sentinels where the
  master is, so a connection lost in a failover (the batcher's lane included) reconnects to the
  promoted replica; a master the sentinels report down, or none at all, is a ``ConnectionError`` at
  once, which callers see as the port's error (checkphone: DEGRADED).
- **Cluster**: redis-py's ``RedisCluster`` (MOVED/ASK, slot map reloaded after a node failure); the
  batcher sends each tick's commands as one cluster pipeline (``redis_cluster``).
"""
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any, Optional, Union

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisClusterException, RedisError

from callflow.adapters.redis_batch import CommandBatcher
from callflow.adapters.redis_client import NO_CLIENT_SETINFO, WARM_CONNECTIONS, make_redis_client, warm_up
from callflow.adapters.redis_cluster import ClusterCommandBatcher, ClusterPhoneLists
from callflow.adapters.redis_phone_lists import RedisPhoneLists
from callflow.logging import get_logger
from callflow.redis_url import CLUSTER, SENTINEL, RedisTarget, parse_redis_url

AnyRedis = Union[Redis, RedisCluster]
_log = get_logger("callflow.redis")


class BlockingSentinelConnectionPool(SentinelConnectionPool, BlockingConnectionPool):
    """The master's pool: connections found through the sentinels, and a caller waits (within the
    pool's timeout) for a free one when all are busy, as on one node."""


def make_client(url: str, timeout_s: float, max_connections: int) -> AnyRedis:
    """The client for ``url`` (any form of ``CALLFLOW_REDIS_URL``), every round trip bounded by ``timeout_s``."""
    target = parse_redis_url(url)
    if target.topology == SENTINEL:
        return make_sentinel_client(target, timeout_s, max_connections)
    if target.topology == CLUSTER:
        return make_cluster_client(target, timeout_s, max_connections)
    return make_redis_client(target.url, timeout_s, max_connections)


def _one_retry() -> Retry:
    """A dead connection is retried once at once; no backoff (callers have deadlines of 100s of ms)."""
    return Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,))


def make_sentinel_client(target: RedisTarget, timeout_s: float, max_connections: int) -> Redis:
    """A client of the master the sentinels name now, and again after every failover."""
    sentinels = Sentinel(
        list(target.nodes),
        # a sentinel that does not answer is skipped for the next one at once, not retried with backoff
        sentinel_kwargs=dict(socket_timeout=timeout_s, socket_connect_timeout=timeout_s,
                             retry=Retry(NoBackoff(), 0), **NO_CLIENT_SETINFO),
    )
    return sentinels.master_for(
        target.master_name,
        connection_pool_class=BlockingSentinelConnectionPool,
        db=target.db,
        username=target.username,
        password=target.password,
        max_connections=max_connections,
        timeout=timeout_s,
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        retry=_one_retry(),
        health_check_interval=30,
        **NO_CLIENT_SETINFO,
    )


def make_cluster_client(target: RedisTarget, timeout_s: float, max_connections: int) -> RedisCluster:
    """A cluster client seeded with the URL's nodes; ``max_connections`` per node."""
    return RedisCluster(
        startup_nodes=[ClusterNode(host, port) for host, port in target.nodes],
        username=target.username,
        password=target.password,
        max_connections=max_connections,
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        # after a failed node: reload the slot map once and try again (a promoted replica is found)
        retry=Retry(NoBackoff(), 1),
        health_check_interval=30,
        **NO_CLIENT_SETINFO,
    )


async def redis_resource(url: str, timeout_s: float, max_connections: int,
                         warm_connections: int = WARM_CONNECTIONS) -> AsyncIterator[AnyRedis]:
    """Container Resource: the client for the process's life, warmed in the background, closed on
    ``shutdown_resources()`` (start-up never waits for Redis). A command of the CLI asks for no
    warming (``warm_connections=0``): it reports a failure itself, once."""
    client = make_client(url, timeout_s, max_connections)
    warming = asyncio.ensure_future(_warm(client, min(warm_connections, max_connections)))
    try:
        yield client
    finally:
        warming.cancel()
        await close_client(client)


async def _warm(client: AnyRedis, count: int) -> None:
    if count <= 0:
        return
    if not isinstance(client, RedisCluster):
        await warm_up(client.connection_pool, count)
        return
    try:
        await client.initialize()  # the slot map, and a connection to a node
    except (RedisError, OSError) as failure:
        _log.warning("redis cluster not reachable at start: checkphone answers DEGRADED until it is; "
                     "reconnecting on use", error=f"{type(failure).__name__}: {failure}")


async def close_client(client: AnyRedis) -> None:
    """Closes the client, its pool and, under Sentinel, its connections to the sentinels."""
    await client.aclose()
    manager: Optional[Any] = getattr(getattr(client, "connection_pool", None), "sentinel_manager", None)
    for sentinel in getattr(manager, "sentinels", ()):
        await sentinel.aclose()


def batcher_for(client: AnyRedis) -> CommandBatcher:
    """The batcher coalescing each loop tick's commands, for this client's topology."""
    return ClusterCommandBatcher(client) if isinstance(client, RedisCluster) else CommandBatcher(client)


def phone_lists_for(client: AnyRedis, batcher: CommandBatcher) -> RedisPhoneLists:
    """The PhoneLists adapter for this client's topology."""
    if isinstance(client, RedisCluster):
        return ClusterPhoneLists(client, batcher=batcher)
    return RedisPhoneLists(client, batcher=batcher)


async def ping(client: AnyRedis) -> bool:
    """Redis answers: on a cluster, every master answers (a slot without a master fails lookups)."""
    if isinstance(client, RedisCluster):
        return await _ping_masters(client)
    return bool(await client.ping())


async def _ping_masters(client: RedisCluster) -> bool:
    """PING to every master of the slot map, each on a connection of its own node. When one does not
    answer, the slot map is reloaded before the failure is reported, so that the next check (even
    with no call coming in to do it) asks the promoted replica. redis-py's ``ping(target_nodes=...)``
    is not used: after a failure it redoes the client's whole ``initialize`` (``CLUSTER SLOTS`` and
    ``COMMAND``) on the next call, and a readiness timeout cancelling that drops the slot map."""
    manager = client.nodes_manager
    if not manager.slots_cache:
        await manager.initialize()
    try:
        replies = await asyncio.gather(*(node.execute_command("PING") for node in client.get_primaries()))
    except (RedisError, RedisClusterException, OSError):
        await manager.initialize()
        raise
    return bool(replies) and all(replies)
