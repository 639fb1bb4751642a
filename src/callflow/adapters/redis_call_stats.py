"""The CallStats port on Redis: ``stats:calls:{customer_id}:{call_status}`` sets of call ids.

Recording is one round trip: ``SADD`` and ``EXPIRE key ttl NX`` pipelined, so a set gets its expiry
when it is created and never has it extended (Redis >= 7.0). On an older Redis, which refuses ``NX``,
the adapter switches once to a Lua script doing the same in one round trip (ADR 0033). Records of
the same loop tick share one write and one connection (``CommandBatcher``, ADR 0024).
"""
from __future__ import annotations

from collections.abc import Awaitable
from typing import Any, Optional, TypeVar

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from callflow.adapters.redis_batch import CommandBatcher
from callflow.adapters.redis_client import as_text, timed_round_trip
from callflow.domain.identifiers import require_identifier
from callflow.service_layer.ports import CallStatsUnavailable

KEY_PREFIX = "stats:calls:"
T = TypeVar("T")
_ADD_EXPIRING_ON_CREATION = """
local added = redis.call('SADD', KEYS[1], ARGV[1])
if redis.call('TTL', KEYS[1]) == -1 then redis.call('EXPIRE', KEYS[1], ARGV[2]) end
return added
"""


def customer_prefix(customer_id: str) -> str:
    """``stats:calls:{customer_id}:``; the id must be an identifier (never builds a bad key)."""
    return f"{KEY_PREFIX}{require_identifier('customer_id', customer_id)}:"


def stats_key(customer_id: str, call_status: str) -> str:
    """``stats:calls:{customer_id}:{call_status}``, both parts identifiers."""
    return customer_prefix(customer_id) + require_identifier("call_status", call_status)


class RedisCallStats:
    """Implements ``CallStats`` on a shared ``redis.asyncio.Redis`` client."""

    def __init__(self, client: Redis, ttl_s: int, timeout_s: float, expire_nx: bool = True,
                 batcher: Optional[CommandBatcher] = None) -> None:
        """``expire_nx=False`` goes straight to the script (a server known to predate Redis 7.0);
        ``batcher``: the process's shared one (by default one of this adapter's own on ``client``)."""
        self._client = client
        self._ttl_s = ttl_s
        self._timeout_s = timeout_s
        self._expire_nx = expire_nx  # becomes False once the server refuses EXPIRE ... NX
        self._batcher = batcher or CommandBatcher(client)
        self._script_sha = self._batcher.script(_ADD_EXPIRING_ON_CREATION)

    async def record(self, customer_id: str, call_status: str, call_id: str) -> None:
        key = stats_key(customer_id, call_status)
        call_id = require_identifier("call_id", call_id)
        if self._expire_nx:
            added, expired = await self._round_trip(("SADD", key, call_id), ("EXPIRE", key, self._ttl_s, "NX"))
            _raise_if_error(added)
            if not _refused_nx(expired):
                return
            self._expire_nx = False  # this server predates EXPIRE NX; SADD is idempotent: redo in Lua
        (added,) = await self._round_trip(("EVALSHA", self._script_sha, 1, key, call_id, self._ttl_s))
        _raise_if_error(added)

    async def members(self, customer_id: str, call_status: str) -> set[str]:
        ids = await self._timed("stats_members", self._client.smembers(stats_key(customer_id, call_status)))
        return {as_text(member) for member in ids}

    async def counts(self, customer_id: str) -> dict[str, int]:
        return await self._timed("stats_counts", self._counts(customer_id))

    async def ttl(self, customer_id: str, call_status: str) -> Optional[float]:
        milliseconds = await self._timed("stats_ttl", self._client.pttl(stats_key(customer_id, call_status)))
        return milliseconds / 1000.0 if milliseconds >= 0 else None

    async def _timed(self, op: str, awaitable: Awaitable[T]) -> T:
        return await timed_round_trip(op, awaitable, self._timeout_s, CallStatsUnavailable)

    async def _round_trip(self, *commands: tuple[Any, ...]) -> list[Any]:
        return await self._batcher.round_trip("stats_record", commands, self._timeout_s, CallStatsUnavailable)

    async def _counts(self, customer_id: str) -> dict[str, int]:
        prefix = customer_prefix(customer_id)  # ids hold no glob character: the pattern is literal
        keys: list[Any] = [key async for key in self._client.scan_iter(match=prefix + "*", count=1000)]
        pipe = self._client.pipeline(transaction=False)
        for key in keys:
            pipe.scard(key)
        sizes = await pipe.execute() if keys else []
        return {as_text(key)[len(prefix):]: size for key, size in zip(keys, sizes) if size}


def _refused_nx(reply: Any) -> bool:
    """True when EXPIRE failed because the server does not know its NX option (Redis < 7.0)."""
    if isinstance(reply, ResponseError):
        text = str(reply).lower()
        if "wrong number of arguments" in text or "syntax" in text or "unsupported" in text:
            return True
    _raise_if_error(reply)
    return False


def _raise_if_error(reply: Any) -> None:
    """An error reply (wrong type of key, scripting disabled...) is the port's error."""
    if isinstance(reply, Exception):
        raise CallStatsUnavailable(f"redis stats_record: {reply}") from reply
