"""The PhoneLists port on Redis: ``phone:blacklist:{phone}`` = "1" with a TTL, ``phone:vip`` set.

The keys are a contract with other tools (docs/reference.md, Redis keys).

A lookup is one command: a read-only Lua script (``EVALSHA``) doing ``EXISTS`` over every blacklist
key and ``SISMEMBER`` per form. It costs the client less CPU than a pipeline of the same commands
(one command to pack and one reply to parse instead of five), and unlike
``SMISMEMBER`` it runs on any Redis from 3.0.3 (ADR 0022). Lookups of the same loop tick share one
write and one connection (``CommandBatcher``, ADR 0024).
"""
from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Sequence
from typing import Any, Callable, Optional, TypeVar, Union

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from callflow.adapters.redis_batch import CommandBatcher
from callflow.adapters.redis_client import as_text, timed_round_trip
from callflow.domain.policy import PhoneListing
from callflow.service_layer.ports import PhoneListsUnavailable

BLACKLIST_PREFIX = "phone:blacklist:"
VIP_KEY = "phone:vip"
#: KEYS: the VIP set, then each form's blacklist key; ARGV: the forms. Returns {blacklisted, vip}.
LOOKUP_SCRIPT = """
local blacklisted = redis.call('EXISTS', unpack(KEYS, 2))
for _, form in ipairs(ARGV) do
  if redis.call('SISMEMBER', KEYS[1], form) == 1 then return {blacklisted, 1} end
end
return {blacklisted, 0}
"""
_SCAN_BATCH = 1000
#: the four possible answers, built once (a lookup allocates no listing)
_LISTINGS = {(b, v): PhoneListing(blacklisted=b, vip=v) for b in (False, True) for v in (False, True)}
T = TypeVar("T")


class RedisPhoneLists:
    """Implements ``PhoneLists`` on a shared ``redis.asyncio.Redis`` client.

    ``admin_timeout_s`` bounds the admin operations (a batch of writes, a page of a scan); lookups
    take their own, shorter, timeout from the caller and go through ``batcher`` (the process's
    shared one; by default one of this adapter's own on ``client``).
    """

    def __init__(self, client: Union[Redis, RedisCluster], admin_timeout_s: float = 5.0,
                 batcher: Optional[CommandBatcher] = None) -> None:
        self._client = client
        self._admin_timeout_s = admin_timeout_s
        self._batcher = batcher or CommandBatcher(client)
        self._lookup_sha = self._batcher.script(LOOKUP_SCRIPT)  # EVALSHA; loaded again after a restart

    async def lookup(self, forms: Sequence[str], timeout_s: float) -> PhoneListing:
        if not forms:
            return PhoneListing()
        command = ("EVALSHA", self._lookup_sha, len(forms) + 1, VIP_KEY,
                   *[BLACKLIST_PREFIX + form for form in forms], *forms)
        reply = (await self._batcher.round_trip("phone_lookup", (command,), timeout_s, PhoneListsUnavailable))[0]
        if isinstance(reply, Exception):  # e.g. scripting disabled: the lists cannot be read
            raise PhoneListsUnavailable(f"redis phone_lookup: {reply}")
        blacklisted, vip = reply
        return _LISTINGS[blacklisted > 0, vip == 1]

    async def blacklist_add(self, numbers: Sequence[str], ttl_s: int,
                            ttls: Optional[Sequence[int]] = None) -> set[str]:
        if not numbers:
            return set()
        pipe = self._client.pipeline(transaction=False)
        for i, number in enumerate(numbers):
            key = BLACKLIST_PREFIX + number
            pipe.exists(key)  # EXISTS then SET, not SET ... GET: any Redis from 3.0.3
            pipe.set(key, "1", ex=(ttl_s if ttls is None else ttls[i]) or None)
        replies = await self._timed("blacklist_add", pipe.execute(), self._admin_timeout_s)
        return _listed_before(numbers, replies[::2])

    async def blacklist_expiries(self, forms: Sequence[str]) -> dict[str, Optional[int]]:
        if not forms:
            return {}
        pipe = self._client.pipeline(transaction=False)
        for form in forms:
            pipe.pttl(BLACKLIST_PREFIX + form)
        replies = await self._timed("blacklist_expiries", pipe.execute(), self._admin_timeout_s)
        expiries: dict[str, Optional[int]] = {}
        for form, pttl in zip(forms, replies):
            if pttl == -1:
                expiries[form] = None
            elif pttl >= 0:
                expiries[form] = max(1, -(-int(pttl) // 1000))  # rounded up: an entry is never cut short
        return expiries

    async def blacklist_remove(self, forms: Sequence[str]) -> int:
        if not forms:
            return 0
        keys = [BLACKLIST_PREFIX + form for form in forms]
        return int(await self._timed("blacklist_remove", self._client.delete(*keys), self._admin_timeout_s))

    async def blacklist_members(self) -> AsyncIterator[str]:
        async for key in self._scan("blacklist_members", lambda cursor: self._client.scan(
                cursor, match=BLACKLIST_PREFIX + "*", count=_SCAN_BATCH)):
            yield key[len(BLACKLIST_PREFIX):]

    async def vip_add(self, numbers: Sequence[str]) -> set[str]:
        if not numbers:
            return set()
        pipe = self._client.pipeline(transaction=False)
        for number in numbers:
            pipe.sadd(VIP_KEY, number)  # one SADD each: its reply says whether that number was new
        replies = await self._timed("vip_add", pipe.execute(), self._admin_timeout_s)
        return _listed_before(numbers, [not added for added in replies])

    async def vip_remove(self, forms: Sequence[str]) -> int:
        if not forms:
            return 0
        return int(await self._timed("vip_remove", self._client.srem(VIP_KEY, *forms), self._admin_timeout_s))

    async def vip_members(self) -> AsyncIterator[str]:
        async for member in self._scan("vip_members", lambda cursor: self._client.sscan(
                VIP_KEY, cursor, count=_SCAN_BATCH)):
            yield member

    async def _scan(self, op: str, page: Callable[[int], Awaitable[Any]]) -> AsyncIterator[str]:
        """Every item of a SCAN-family iteration, one page per round trip within the admin timeout."""
        cursor = 0
        while True:
            cursor, items = await self._timed(op, page(cursor), self._admin_timeout_s)
            for item in items:
                yield as_text(item)
            if int(cursor) == 0:
                return

    async def _timed(self, op: str, awaitable: Awaitable[T], timeout_s: float) -> T:
        return await timed_round_trip(op, awaitable, timeout_s, PhoneListsUnavailable)


def _listed_before(numbers: Sequence[str], listed: Sequence[Any]) -> set[str]:
    """The numbers whose first occurrence in the batch found them listed (a number given twice is
    found by its second occurrence only because of its first)."""
    seen: set[str] = set()
    before: set[str] = set()
    for number, was_listed in zip(numbers, listed):
        if number not in seen:
            seen.add(number)
            if was_listed:
                before.add(number)
    return before
