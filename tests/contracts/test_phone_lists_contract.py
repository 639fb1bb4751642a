"""The PhoneLists contract, run against Redis (the test db) and the in-memory twin; then both side by side.

Forms carry a prefix unique to the test, so tests never see (or delete) each other's entries and
never need FLUSHDB.
"""
from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable
from typing import Any, Callable

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule
from redis.asyncio import Redis

from callflow.adapters.in_memory_phone_lists import InMemoryPhoneLists
from callflow.adapters.redis_client import make_redis_client
from callflow.adapters.redis_phone_lists import BLACKLIST_PREFIX, VIP_KEY, RedisPhoneLists
from callflow.domain.policy import PhoneListing
from callflow.service_layer.ports import PhoneLists, PhoneListsUnavailable
from tests.conftest import REDIS_URL
from tests.support.metrics import sample
from tests.support.phone_lists import ManualClock

DAY_S = 86400
#: a few forms, some sharing digits, one raw form with separators, drawn from in the state machine
FORMS = st.lists(st.sampled_from(["84912406496", "0912406496", "+84912406496", "1001", "+84 912 406 496"]),
                 max_size=3)


async def members_with(prefix: str, members: AsyncIterator[str]) -> list[str]:
    return sorted([m async for m in members if m.startswith(prefix)])


class PhoneListsContract:
    """Behaviour every PhoneLists adapter must show. ``p`` is a prefix unique to the test."""

    @pytest.fixture
    def p(self) -> str:
        return "t" + uuid.uuid4().hex[:10] + "-"

    async def advance(self, seconds: float) -> None:
        """Let ``seconds`` pass for the adapter."""
        raise NotImplementedError

    async def test_a_blacklisted_form_is_found_among_others(self, lists: PhoneLists, p: str) -> None:
        """lookup is blacklisted when any one of the forms is; other forms alone are not."""
        await lists.blacklist_add([p + "0912406496"], DAY_S)
        found = await lists.lookup([p + "84912406496", p + "0912406496", p + "+84912406496"], 1.0)
        assert found == PhoneListing(blacklisted=True, vip=False)
        assert await lists.lookup([p + "84912406496", p + "+84912406496"], 1.0) == PhoneListing()

    async def test_a_vip_form_is_found_among_others(self, lists: PhoneLists, p: str) -> None:
        """lookup is VIP when any one of the forms is in the VIP set."""
        await lists.vip_add([p + "0912406496"])
        assert await lists.lookup([p + "84912406496", p + "0912406496"], 1.0) == PhoneListing(vip=True)
        assert await lists.lookup([p + "84912406496"], 1.0) == PhoneListing()

    async def test_a_number_can_be_on_both_lists(self, lists: PhoneLists, p: str) -> None:
        """Both flags are reported; deciding between them is the policy's job."""
        await lists.blacklist_add([p + "1"], DAY_S)
        await lists.vip_add([p + "1"])
        assert await lists.lookup([p + "1"], 1.0) == PhoneListing(blacklisted=True, vip=True)

    async def test_forms_are_stored_literally(self, lists: PhoneLists, p: str) -> None:
        """A raw form with '+', spaces and parentheses is its own entry, found only as written."""
        raw = p + "+84 (912) 406 496"
        await lists.blacklist_add([raw], DAY_S)
        await lists.vip_add([raw])
        assert await lists.lookup([raw], 1.0) == PhoneListing(blacklisted=True, vip=True)
        assert await lists.lookup([p + "+84912406496"], 1.0) == PhoneListing()
        assert await members_with(p, lists.blacklist_members()) == [raw]

    async def test_blacklist_entries_expire_after_their_ttl(self, lists: PhoneLists, p: str) -> None:
        """An entry added for 1 s is gone after it; one added with ttl 0 stays."""
        await lists.blacklist_add([p + "1"], 1)
        await lists.blacklist_add([p + "2"], 0)
        assert (await lists.lookup([p + "1"], 1.0)).blacklisted
        await self.advance(1.2)
        assert await lists.lookup([p + "1"], 1.0) == PhoneListing()
        assert (await lists.lookup([p + "2"], 1.0)).blacklisted
        assert await members_with(p, lists.blacklist_members()) == [p + "2"]

    async def test_adding_again_renews_the_ttl(self, lists: PhoneLists, p: str) -> None:
        """Re-adding an entry with a longer ttl keeps it past its first expiry."""
        await lists.blacklist_add([p + "1"], 1)
        await lists.blacklist_add([p + "1"], DAY_S)
        await self.advance(1.2)
        assert (await lists.lookup([p + "1"], 1.0)).blacklisted

    async def test_adding_says_which_numbers_were_already_listed(self, lists: PhoneLists, p: str) -> None:
        """blacklist_add and vip_add return the numbers that were there before (an operator is told)."""
        assert await lists.blacklist_add([p + "1"], DAY_S) == set()
        assert await lists.blacklist_add([p + "1", p + "2"], DAY_S) == {p + "1"}
        assert await lists.vip_add([p + "1"]) == set()
        assert await lists.vip_add([p + "1", p + "3"]) == {p + "1"}
        assert await lists.vip_add([p + "4", p + "4"]) == set()  # listed by the call itself: not before
        assert await lists.blacklist_add([p + "5", p + "5"], DAY_S) == set()

    async def test_each_number_may_get_its_own_ttl(self, lists: PhoneLists, p: str) -> None:
        """``ttls`` gives each number its own expiry (an import of an export keeps each one's)."""
        await lists.blacklist_add([p + "1", p + "2", p + "3"], DAY_S, ttls=[1, 0, DAY_S])
        await self.advance(1.2)
        assert await lists.lookup([p + "1"], 1.0) == PhoneListing()
        assert (await lists.lookup([p + "2"], 1.0)).blacklisted and (await lists.lookup([p + "3"], 1.0)).blacklisted

    async def test_expiries_say_the_seconds_left(self, lists: PhoneLists, p: str) -> None:
        """Seconds left rounded up, None for an entry without expiry, unlisted forms left out."""
        await lists.blacklist_add([p + "1"], DAY_S)
        await lists.blacklist_add([p + "2"], 0)
        expiries = await lists.blacklist_expiries([p + "1", p + "2", p + "zz"])
        assert set(expiries) == {p + "1", p + "2"}
        assert DAY_S - 5 <= (expiries[p + "1"] or 0) <= DAY_S and expiries[p + "2"] is None

    async def test_blacklist_remove_removes_every_form_and_counts_them(self, lists: PhoneLists, p: str) -> None:
        """remove deletes each given form that was listed and says how many there were."""
        await lists.blacklist_add([p + "a", p + "b", p + "c"], DAY_S)
        assert await lists.blacklist_remove([p + "a", p + "b", p + "zz"]) == 2
        assert await lists.blacklist_remove([p + "a"]) == 0
        assert await members_with(p, lists.blacklist_members()) == [p + "c"]

    async def test_vip_add_remove_and_members(self, lists: PhoneLists, p: str) -> None:
        """VIP members are what was added and not removed; remove counts what was there."""
        await lists.vip_add([p + "a", p + "b", p + "b"])
        assert await members_with(p, lists.vip_members()) == [p + "a", p + "b"]
        assert await lists.vip_remove([p + "b", p + "zz"]) == 1
        assert await members_with(p, lists.vip_members()) == [p + "a"]

    async def test_members_are_listed_past_one_scan_page(self, lists: PhoneLists, p: str) -> None:
        """Thousands of entries are all listed, each once (the scan pages through them)."""
        numbers = [f"{p}{n:05d}" for n in range(2500)]
        await lists.blacklist_add(numbers, DAY_S)
        await lists.vip_add(numbers)
        assert await members_with(p, lists.blacklist_members()) == numbers
        assert await members_with(p, lists.vip_members()) == numbers

    async def test_empty_batches_do_nothing(self, lists: PhoneLists, p: str) -> None:
        """Adding or removing no numbers is a no-op that returns 0 removed."""
        await lists.blacklist_add([], DAY_S)
        await lists.vip_add([])
        assert await lists.blacklist_remove([]) == 0
        assert await lists.vip_remove([]) == 0

    async def test_no_forms_are_on_no_list(self, lists: PhoneLists, p: str) -> None:
        """A lookup of no forms at all is simply not listed."""
        assert await lists.lookup([], 1.0) == PhoneListing()

    async def test_no_time_left_is_unavailable(self, lists: PhoneLists, p: str) -> None:
        """A lookup given no time raises PhoneListsUnavailable rather than answering late."""
        with pytest.raises(PhoneListsUnavailable):
            await lists.lookup([p + "1"], 0.0)


class TestInMemoryPhoneLists(PhoneListsContract):
    @pytest.fixture
    def lists(self) -> InMemoryPhoneLists:
        self.clock = ManualClock()
        return InMemoryPhoneLists(self.clock)

    async def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)

    async def test_unavailable_lists_refuse_every_call(self, lists: InMemoryPhoneLists, p: str) -> None:
        """Marked unavailable, lookups and admin calls raise PhoneListsUnavailable."""
        lists.available = False
        with pytest.raises(PhoneListsUnavailable):
            await lists.lookup([p + "1"], 1.0)
        with pytest.raises(PhoneListsUnavailable):
            await lists.blacklist_add([p + "1"], DAY_S)


@pytest.mark.integration
class TestRedisPhoneLists(PhoneListsContract):
    @pytest.fixture
    async def lists(self, p: str) -> AsyncIterator[RedisPhoneLists]:
        client = make_redis_client(REDIS_URL, timeout_s=1.0, max_connections=16)
        yield RedisPhoneLists(client)
        await _forget(client, p)
        await client.aclose()

    async def advance(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    async def test_the_keys_are_the_spec_keys(self, lists: RedisPhoneLists, p: str) -> None:
        """Blacklist: phone:blacklist:{phone} = "1" with the TTL; VIP: member of the set phone:vip."""
        await lists.blacklist_add([p + "1"], 300)
        await lists.vip_add([p + "2"])
        client = Redis.from_url(REDIS_URL)
        try:
            assert await client.get(BLACKLIST_PREFIX + p + "1") == b"1"
            assert 295 < await client.ttl(BLACKLIST_PREFIX + p + "1") <= 300
            assert await client.sismember(VIP_KEY, p + "2")
        finally:
            await client.aclose()

    async def test_lookups_are_timed_and_failures_counted(self, lists: RedisPhoneLists, p: str) -> None:
        """Each lookup lands in callflow_redis_seconds{op=phone_lookup}; a failed one also in
        callflow_redis_errors_total{op=phone_lookup}."""
        seconds = sample("callflow_redis_seconds_count", op="phone_lookup")
        errors = sample("callflow_redis_errors_total", op="phone_lookup")
        await lists.lookup([p + "1"], 1.0)
        with pytest.raises(PhoneListsUnavailable):
            await lists.lookup([p + "1"], 0.0)
        assert sample("callflow_redis_seconds_count", op="phone_lookup") == seconds + 2
        assert sample("callflow_redis_errors_total", op="phone_lookup") == errors + 1

    async def test_unreachable_redis_is_unavailable_at_once(self, p: str) -> None:
        """Nothing listening: every call raises PhoneListsUnavailable, well within its timeout."""
        client = make_redis_client("redis://127.0.0.1:1/0", timeout_s=0.3, max_connections=4)
        lists = RedisPhoneLists(client, admin_timeout_s=0.3)
        try:
            started = time.monotonic()
            with pytest.raises(PhoneListsUnavailable):
                await lists.lookup([p + "1"], 0.3)
            with pytest.raises(PhoneListsUnavailable):
                await lists.blacklist_add([p + "1"], DAY_S)
            with pytest.raises(PhoneListsUnavailable):
                _ = [m async for m in lists.vip_members()]
            assert time.monotonic() - started < 0.9
        finally:
            await client.aclose()


async def _forget(client: Redis, p: str) -> None:
    """Delete what a test wrote (its prefix), leaving every other entry of the db alone."""
    keys = [key async for key in client.scan_iter(match=BLACKLIST_PREFIX + p + "*", count=1000)]
    members = [m for m in await client.smembers(VIP_KEY) if m.decode().startswith(p)]
    if keys:
        await client.delete(*keys)
    if members:
        await client.srem(VIP_KEY, *members)


@pytest.mark.integration
class PhoneListsAgree(RuleBasedStateMachine):
    """Drives Redis and the in-memory twin with the same calls; they must answer alike throughout."""

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        # Python 3.9's asyncio primitives (the pool's lock) bind to the current loop when created
        asyncio.set_event_loop(self.loop)
        self.prefix = "t" + uuid.uuid4().hex[:10] + "-"
        self.client = make_redis_client(REDIS_URL, timeout_s=1.0, max_connections=4)
        self.adapters = (RedisPhoneLists(self.client), InMemoryPhoneLists(ManualClock()))

    def both(self, call: Callable[[PhoneLists], Awaitable[Any]]) -> tuple[Any, Any]:
        return tuple(self.loop.run_until_complete(call(adapter)) for adapter in self.adapters)

    def forms(self, picks: list[str]) -> list[str]:
        return [self.prefix + pick for pick in picks]

    @rule(picks=FORMS, ttl_s=st.sampled_from([0, DAY_S]))
    def blacklist_add(self, picks: list[str], ttl_s: int) -> None:
        self.both(lambda lists: lists.blacklist_add(self.forms(picks), ttl_s))

    @rule(picks=FORMS)
    def vip_add(self, picks: list[str]) -> None:
        self.both(lambda lists: lists.vip_add(self.forms(picks)))

    @rule(picks=FORMS)
    def blacklist_remove(self, picks: list[str]) -> None:
        redis_count, memory_count = self.both(lambda lists: lists.blacklist_remove(self.forms(picks)))
        assert redis_count == memory_count

    @rule(picks=FORMS)
    def vip_remove(self, picks: list[str]) -> None:
        redis_count, memory_count = self.both(lambda lists: lists.vip_remove(self.forms(picks)))
        assert redis_count == memory_count

    @rule(picks=FORMS.filter(bool))
    def lookup(self, picks: list[str]) -> None:
        redis_listing, memory_listing = self.both(lambda lists: lists.lookup(self.forms(picks), 1.0))
        assert redis_listing == memory_listing

    @invariant()
    def members_agree(self) -> None:
        for members in (lambda lists: members_with(self.prefix, lists.blacklist_members()),
                        lambda lists: members_with(self.prefix, lists.vip_members())):
            redis_members, memory_members = self.both(members)
            assert redis_members == memory_members

    def teardown(self) -> None:
        self.loop.run_until_complete(_forget(self.client, self.prefix))
        self.loop.run_until_complete(self.client.aclose())
        asyncio.set_event_loop(None)
        self.loop.close()


PhoneListsAgree.TestCase.settings = settings(max_examples=25, stateful_step_count=15, deadline=None)
TestPhoneListsAgree = PhoneListsAgree.TestCase
