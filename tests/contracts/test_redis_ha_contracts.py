"""The PhoneLists and CallStats contracts on Redis under Sentinel and on a Redis Cluster.

The same suites as on one node (``test_phone_lists_contract``, ``test_call_stats_contract``), run
against the adapters the composition root builds for ``redis+sentinel://`` and ``redis+cluster://``
URLs, on private groups started for the run (``tests/support/redis_ha``); then what only a cluster
can get wrong: keys of one lookup on several masters, scripts unknown to a node, every master listed.
"""
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from redis.asyncio.cluster import RedisCluster

from callflow.adapters.redis_call_stats import RedisCallStats, stats_key
from callflow.adapters.redis_cluster import ClusterCommandBatcher, ClusterPhoneLists
from callflow.adapters.redis_phone_lists import BLACKLIST_PREFIX, VIP_KEY, RedisPhoneLists
from callflow.adapters.redis_topology import batcher_for, close_client, make_client, phone_lists_for, ping
from callflow.domain.policy import PhoneListing
from callflow.service_layer.ports import CallStats
from tests.contracts.test_call_stats_contract import TTL_S, CallStatsContract
from tests.contracts.test_phone_lists_contract import DAY_S, PhoneListsContract, members_with

pytestmark = [pytest.mark.integration, pytest.mark.redis_ha]


class _OnTopology:
    """The adapter for ``self.url(group)``, as ``containers`` builds it."""

    group_fixture = ""

    @pytest.fixture
    async def client(self, request) -> AsyncIterator[object]:
        group = request.getfixturevalue(self.group_fixture)
        client = make_client(group.url, timeout_s=2.0, max_connections=16)
        if isinstance(client, RedisCluster):
            await client.initialize()  # the slot map, for the tests that ask where a key lives
        yield client
        await close_client(client)

    async def advance(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class _PhoneListsOnTopology(_OnTopology, PhoneListsContract):
    @pytest.fixture
    async def lists(self, client) -> AsyncIterator[RedisPhoneLists]:
        yield phone_lists_for(client, batcher_for(client))

    async def test_the_keys_are_the_spec_keys(self, lists: RedisPhoneLists, client, p: str) -> None:
        """phone:blacklist:{phone} = "1" with its TTL; phone:vip a set of forms (the braces are no hash tag)."""
        await lists.blacklist_add([p + "1"], 300)
        await lists.vip_add([p + "2"])
        assert await client.get(BLACKLIST_PREFIX + p + "1") == b"1"
        assert 295 < await client.ttl(BLACKLIST_PREFIX + p + "1") <= 300
        assert await client.sismember(VIP_KEY, p + "2")

    async def test_the_client_answers_the_readiness_ping(self, client) -> None:
        assert await ping(client) is True


class _CallStatsOnTopology(_OnTopology, CallStatsContract):
    expire_nx = True

    @pytest.fixture
    async def stats(self, client) -> AsyncIterator[CallStats]:
        yield RedisCallStats(client, ttl_s=TTL_S, timeout_s=2.0, expire_nx=self.expire_nx, batcher=batcher_for(client))


class TestSentinelPhoneLists(_PhoneListsOnTopology):
    group_fixture = "redis_sentinel"


class TestSentinelCallStats(_CallStatsOnTopology):
    group_fixture = "redis_sentinel"


class TestSentinelCallStatsScript(TestSentinelCallStats):
    expire_nx = False


class TestClusterPhoneLists(_PhoneListsOnTopology):
    group_fixture = "redis_cluster"

    async def test_one_lookup_reads_keys_of_several_masters(self, lists: RedisPhoneLists, client, p: str) -> None:
        """The forms' keys and phone:vip sit on different masters: found anyway, no CROSSSLOT."""
        forms = [f"{p}{n}" for n in range(5)]
        nodes = {client.get_node_from_key(BLACKLIST_PREFIX + form).name for form in forms}
        nodes.add(client.get_node_from_key(VIP_KEY).name)
        assert len(nodes) >= 2
        await lists.blacklist_add([forms[3]], DAY_S)
        await lists.vip_add([forms[4]])
        assert await lists.lookup(forms, 1.0) == PhoneListing(blacklisted=True, vip=True)
        assert await lists.lookup(forms[:3], 1.0) == PhoneListing()

    async def test_listing_covers_every_master(self, lists: RedisPhoneLists, client, p: str) -> None:
        """Entries on each master are all listed (each master is scanned to its end)."""
        numbers = [f"{p}{n:03d}" for n in range(60)]
        assert len({client.get_node_from_key(BLACKLIST_PREFIX + n).name for n in numbers}) == 3
        await lists.blacklist_add(numbers, DAY_S)
        assert await members_with(p, lists.blacklist_members()) == numbers
        assert await lists.blacklist_remove(numbers[:30] + [p + "absent"]) == 30

    async def test_lookups_of_one_tick_share_one_write_per_master(self, client, p: str) -> None:
        """100 concurrent lookups: every one answered right, each master written to once per batch."""
        batcher = ClusterCommandBatcher(client)
        lists = ClusterPhoneLists(client, batcher=batcher)
        await lists.blacklist_add([p + "7"], DAY_S)
        writes = []
        on_master = batcher._on_master

        async def counting(node, commands):
            writes.append((node.name, len(commands)))
            return await on_master(node, commands)

        batcher._on_master = counting  # type: ignore[method-assign]
        found = await asyncio.gather(*(lists.lookup([p + str(n % 10), p + "x"], 2.0) for n in range(100)))
        assert [listing.blacklisted for listing in found] == [n % 10 == 7 for n in range(100)]
        assert sum(count for _, count in writes) == 400
        assert len(writes) <= 3 * 10  # at most a few batches, each one write per master

    async def test_a_stale_slot_map_is_corrected_by_the_moved_reply(self, lists: RedisPhoneLists, client,
                                                                    p: str) -> None:
        """The slot map sends phone:vip to the wrong master: the MOVED reply is followed (redis-py)
        and the lookup is still right; the map is right again afterwards."""
        await lists.vip_add([p + "1"])
        slot = client.keyslot(VIP_KEY)
        right = client.nodes_manager.slots_cache[slot]
        wrong = next(node for node in client.get_primaries() if node.name != right[0].name)
        client.nodes_manager.slots_cache[slot] = [wrong]
        try:
            assert await lists.lookup([p + "1"], 2.0) == PhoneListing(vip=True)
            assert client.get_node_from_key(VIP_KEY).name == right[0].name
        finally:
            client.nodes_manager.slots_cache[slot] = right


    async def test_an_ask_redirection_is_followed(self, lists: RedisPhoneLists, client, redis_cluster, p: str) -> None:
        """A slot being migrated: its key already on the importing master, the migrating one answers
        ASK; the lookup follows it (redis-py sends ASKING) and finds the entry."""
        import redis as sync_redis

        key = BLACKLIST_PREFIX + p + "1"
        slot = client.keyslot(key)
        source = client.get_node_from_key(key)
        target = next(node for node in client.get_primaries() if node.name != source.name)
        source_r = sync_redis.Redis(host=source.host, port=int(source.port))
        target_r = sync_redis.Redis(host=target.host, port=int(target.port))
        try:
            source_id, target_id = source_r.execute_command("CLUSTER MYID"), target_r.execute_command("CLUSTER MYID")
            target_r.execute_command("CLUSTER SETSLOT", slot, "IMPORTING", source_id)
            source_r.execute_command("CLUSTER SETSLOT", slot, "MIGRATING", target_id)
            with target_r.pipeline(transaction=False) as pipe:  # ASKING holds for the next command only
                pipe.execute_command("ASKING")
                pipe.execute_command("SET", key, "1", "EX", 300)
                pipe.execute()
            with pytest.raises(sync_redis.exceptions.AskError):  # what the lookup's EXISTS gets first
                source_r.exists(key)
            assert await lists.lookup([p + "1"], 2.0) == PhoneListing(blacklisted=True)
        finally:
            with target_r.pipeline(transaction=False) as pipe:  # while still importing: ASKING works
                pipe.execute_command("ASKING")
                pipe.execute_command("DEL", key)
                pipe.execute()
            for node in (source_r, target_r):
                node.execute_command("CLUSTER SETSLOT", slot, "STABLE")
            source_r.close()
            target_r.close()


class TestClusterCallStats(_CallStatsOnTopology):
    group_fixture = "redis_cluster"

    async def test_counts_cover_sets_on_every_master(self, stats: CallStats, client, customer: str) -> None:
        """A customer's sets are spread over the masters; counts finds each of them."""
        statuses = [f"s{n}" for n in range(12)]
        assert len({client.get_node_from_key(stats_key(customer, s)).name for s in statuses}) >= 2
        for status in statuses:
            await stats.record(customer, status, "1.1")
        assert await stats.counts(customer) == {status: 1 for status in statuses}


class TestClusterCallStatsScript(TestClusterCallStats):
    """The Lua path (servers before 7.0): a node that lost its scripts gets them loaded again."""

    expire_nx = False

    async def test_a_node_without_the_script_gets_it_again(self, stats: CallStats, client: RedisCluster,
                                                           customer: str) -> None:
        await stats.record(customer, "ringing", "1.1")
        await client.script_flush()  # every master (redis-py sends SCRIPT FLUSH to each)
        sha = stats._script_sha  # type: ignore[attr-defined]
        assert await client.script_exists(sha) == [False]
        await stats.record(customer, "ringing", "1.2")
        assert await stats.members(customer, "ringing") == {"1.1", "1.2"}


