"""Batched lookups and stats records across a Redis restart and a script flush (a private redis-server)."""
from __future__ import annotations

import asyncio

import pytest

from callflow.adapters.redis_batch import CommandBatcher
from callflow.adapters.redis_call_stats import RedisCallStats
from callflow.adapters.redis_client import make_redis_client
from callflow.adapters.redis_phone_lists import RedisPhoneLists
from callflow.domain.policy import PhoneListing
from tests.support.redis_process import RedisProcess

pytestmark = [pytest.mark.integration, pytest.mark.fault]

FORMS = ["84912406496", "0912406496"]




async def test_the_first_calls_after_a_restart_are_answered(redis_process: RedisProcess) -> None:
    """Redis restarted under idle connections: the next lookups and records succeed at the first try
    (a dead connection is retried once on a fresh one; the script is loaded again)."""
    client = make_redis_client(redis_process.url, timeout_s=1.0, max_connections=8)
    batcher = CommandBatcher(client)
    lists, stats = RedisPhoneLists(client, batcher=batcher), RedisCallStats(client, 60, 1.0, batcher=batcher)
    try:
        await lists.blacklist_add(["0912406496"], 3600)
        assert await lists.lookup(FORMS, 1.0) == PhoneListing(blacklisted=True)
        await stats.record("c1", "ringing", "1.1")

        await asyncio.get_running_loop().run_in_executor(None, redis_process.stop)
        redis_process.start()
        await lists.blacklist_add(["0912406496"], 3600)  # SHUTDOWN NOSAVE lost the data
        found, _ = await asyncio.gather(lists.lookup(FORMS, 1.0), stats.record("c1", "ringing", "1.2"))
        assert found == PhoneListing(blacklisted=True)
        assert await stats.members("c1", "ringing") == {"1.2"}
    finally:
        await client.aclose()


async def test_lookups_survive_a_script_flush(redis_process: RedisProcess) -> None:
    """SCRIPT FLUSH between two bursts: every lookup of the second burst still answers (NOSCRIPT, reload, redo)."""
    client = make_redis_client(redis_process.url, timeout_s=1.0, max_connections=8)
    lists = RedisPhoneLists(client)
    try:
        await lists.vip_add(["0912406496"])
        assert await lists.lookup(FORMS, 1.0) == PhoneListing(vip=True)
        with redis_process.client() as admin:
            admin.script_flush()
        found = await asyncio.gather(*(lists.lookup(FORMS, 1.0) for _ in range(20)))
        assert found == [PhoneListing(vip=True)] * 20
    finally:
        await client.aclose()
