"""The PhoneLists port kept in memory: same contract as Redis, expiry read from the Clock port."""
from __future__ import annotations

import math
from collections.abc import AsyncIterator, Sequence
from datetime import datetime, timedelta
from typing import Optional

from callflow.domain.policy import PhoneListing
from callflow.service_layer.ports import Clock, PhoneListsUnavailable


class InMemoryPhoneLists:
    """Implements ``PhoneLists`` in a dict (blacklist form -> expiry or None) and a set (VIP forms).

    ``available`` set to False makes every call raise ``PhoneListsUnavailable``, as an unreachable
    Redis does.
    """

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._blacklist: dict[str, Optional[datetime]] = {}
        self._vip: set[str] = set()
        self.available = True

    async def lookup(self, forms: Sequence[str], timeout_s: float) -> PhoneListing:
        if not forms:
            return PhoneListing()
        self._check_available()
        if timeout_s <= 0:
            raise PhoneListsUnavailable("no time left for the lookup")
        return PhoneListing(
            blacklisted=any(self._blacklisted(form) for form in forms),
            vip=any(form in self._vip for form in forms),
        )

    async def blacklist_add(self, numbers: Sequence[str], ttl_s: int,
                            ttls: Optional[Sequence[int]] = None) -> set[str]:
        self._check_available()
        already = {number for number in numbers if self._blacklisted(number)}
        for i, number in enumerate(numbers):
            ttl = ttl_s if ttls is None else ttls[i]
            self._blacklist[number] = self._clock.now() + timedelta(seconds=ttl) if ttl else None
        return already

    async def blacklist_expiries(self, forms: Sequence[str]) -> dict[str, Optional[int]]:
        self._check_available()
        expiries: dict[str, Optional[int]] = {}
        for form in forms:
            if self._blacklisted(form):
                expires = self._blacklist[form]
                left = None if expires is None else (expires - self._clock.now()).total_seconds()
                expiries[form] = None if left is None else max(1, math.ceil(left))
        return expiries

    async def blacklist_remove(self, forms: Sequence[str]) -> int:
        self._check_available()
        present = [form for form in dict.fromkeys(forms) if self._blacklisted(form)]
        for form in present:
            del self._blacklist[form]
        return len(present)

    async def blacklist_members(self) -> AsyncIterator[str]:
        self._check_available()
        for form in [form for form in self._blacklist if self._blacklisted(form)]:
            yield form

    async def vip_add(self, numbers: Sequence[str]) -> set[str]:
        self._check_available()
        already = {number for number in numbers if number in self._vip}
        self._vip.update(numbers)
        return already

    async def vip_remove(self, forms: Sequence[str]) -> int:
        self._check_available()
        present: list[str] = [form for form in dict.fromkeys(forms) if form in self._vip]
        self._vip.difference_update(present)
        return len(present)

    async def vip_members(self) -> AsyncIterator[str]:
        self._check_available()
        for member in list(self._vip):
            yield member

    def _blacklisted(self, form: str) -> bool:
        """True when ``form`` has an entry that has not expired (an expired one is forgotten)."""
        if form not in self._blacklist:
            return False
        expires = self._blacklist[form]
        if expires is not None and self._clock.now() >= expires:
            del self._blacklist[form]
            return False
        return True

    def _check_available(self) -> None:
        if not self.available:
            raise PhoneListsUnavailable("the in-memory phone lists are marked unavailable")
