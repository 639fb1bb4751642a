"""The composition root builds, for each form of CALLFLOW_REDIS_URL, the client, batcher and phone lists
of that topology (no connection is made here: clients connect on first use)."""
from __future__ import annotations

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from callflow.adapters.redis_batch import CommandBatcher
from callflow.adapters.redis_cluster import ClusterCommandBatcher, ClusterPhoneLists
from callflow.adapters.redis_phone_lists import RedisPhoneLists
from callflow.adapters.redis_topology import (
    BlockingSentinelConnectionPool,
    batcher_for,
    close_client,
    make_client,
    phone_lists_for,
)


async def test_one_node_is_the_client_of_before() -> None:
    client = make_client("redis://:pw@127.0.0.1:6390/3", timeout_s=0.3, max_connections=7)
    try:
        assert type(client) is Redis
        assert client.connection_pool.connection_kwargs["db"] == 3
        assert client.connection_pool.max_connections == 7
        batcher = batcher_for(client)
        assert type(batcher) is CommandBatcher and type(phone_lists_for(client, batcher)) is RedisPhoneLists
    finally:
        await close_client(client)


async def test_sentinel_gives_a_master_client_found_through_the_sentinels() -> None:
    client = make_client("redis+sentinel://:pw@127.0.0.1:26390,127.0.0.1:26391/calls/2", timeout_s=0.3,
                         max_connections=5)
    try:
        pool = client.connection_pool
        assert isinstance(pool, BlockingSentinelConnectionPool) and pool.is_master
        assert pool.service_name == "calls" and pool.max_connections == 5 and pool.timeout == 0.3
        assert (pool.connection_kwargs["db"], pool.connection_kwargs["password"]) == (2, "pw")
        sentinels = [s.connection_pool.connection_kwargs for s in pool.sentinel_manager.sentinels]
        assert [(k["host"], k["port"]) for k in sentinels] == [("127.0.0.1", 26390), ("127.0.0.1", 26391)]
        assert all("password" not in k or k["password"] is None for k in sentinels)  # the data nodes' password
        batcher = batcher_for(client)
        assert type(batcher) is CommandBatcher and type(phone_lists_for(client, batcher)) is RedisPhoneLists
    finally:
        await close_client(client)


async def test_cluster_gives_a_cluster_client_and_its_own_batcher_and_lists() -> None:
    client = make_client("redis+cluster://:pw@127.0.0.1:7390,127.0.0.1:7391", timeout_s=0.3, max_connections=9)
    try:
        assert isinstance(client, RedisCluster)
        assert [node.name for node in client.startup_nodes] == ["127.0.0.1:7390", "127.0.0.1:7391"]
        assert client.connection_kwargs["password"] == "pw" and client.connection_kwargs["max_connections"] == 9
        batcher = batcher_for(client)
        assert isinstance(batcher, ClusterCommandBatcher)
        assert isinstance(phone_lists_for(client, batcher), ClusterPhoneLists)
    finally:
        await close_client(client)


async def test_every_topology_retries_with_the_asyncio_retry_class() -> None:
    """An asyncio client given redis-py's synchronous Retry warns on every pool it builds (and, with a
    custom retry, drops it): each topology must hand its clients the asyncio class."""
    import warnings

    from redis.asyncio.retry import Retry as AsyncRetry

    urls = ("redis://127.0.0.1:6390/0", "redis+sentinel://127.0.0.1:26390/calls/0",
            "redis+cluster://127.0.0.1:7390")
    for url in urls:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            client = make_client(url, timeout_s=0.3, max_connections=2)
        try:
            if isinstance(client, RedisCluster):
                retries = [client.retry]
            else:
                pool = client.connection_pool
                retries = [pool.connection_kwargs["retry"]]
                manager = getattr(pool, "sentinel_manager", None)
                if manager is not None:
                    retries += [s.connection_pool.connection_kwargs["retry"] for s in manager.sentinels]
            for retry in retries:
                assert isinstance(retry, AsyncRetry), (url, retry)
        finally:
            await close_client(client)
