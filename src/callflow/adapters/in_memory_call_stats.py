"""The CallStats port kept in memory, with the same expiry-on-creation rule as Redis."""
from __future__ import annotations

import time
from typing import Callable, Optional

from callflow.domain.identifiers import require_identifier

_Key = tuple[str, str]


class InMemoryCallStats:
    """Implements ``CallStats``: one set per (customer, status), expiring ``ttl_s`` after creation."""

    def __init__(self, ttl_s: float, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._ttl_s = ttl_s
        self._monotonic = monotonic
        self._sets: dict[_Key, set[str]] = {}
        self._expires_at: dict[_Key, float] = {}

    async def record(self, customer_id: str, call_status: str, call_id: str) -> None:
        key = _key(customer_id, call_status)
        require_identifier("call_id", call_id)
        self._forget_if_expired(key)
        if key not in self._sets:
            self._sets[key] = set()
            self._expires_at[key] = self._monotonic() + self._ttl_s
        self._sets[key].add(call_id)

    async def members(self, customer_id: str, call_status: str) -> set[str]:
        key = _key(customer_id, call_status)
        self._forget_if_expired(key)
        return set(self._sets.get(key, ()))

    async def counts(self, customer_id: str) -> dict[str, int]:
        require_identifier("customer_id", customer_id)
        for key in list(self._sets):
            self._forget_if_expired(key)
        return {status: len(ids) for (customer, status), ids in self._sets.items() if customer == customer_id}

    async def ttl(self, customer_id: str, call_status: str) -> Optional[float]:
        key = _key(customer_id, call_status)
        self._forget_if_expired(key)
        if key not in self._sets:
            return None
        return self._expires_at[key] - self._monotonic()

    def _forget_if_expired(self, key: _Key) -> None:
        if key in self._sets and self._monotonic() >= self._expires_at[key]:
            del self._sets[key]
            del self._expires_at[key]


def _key(customer_id: str, call_status: str) -> _Key:
    """The same ids the Redis adapter accepts in a key, and no others."""
    return require_identifier("customer_id", customer_id), require_identifier("call_status", call_status)
