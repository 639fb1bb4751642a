"""What the checkphone tests share: a clock they move, and in-memory phone lists that keep a journal."""
from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from typing import Optional

from callflow.adapters.in_memory_phone_lists import InMemoryPhoneLists
from callflow.domain.policy import PhoneListing


class ManualClock:
    """A Clock that stands still until the test moves it."""

    def __init__(self) -> None:
        self.current = datetime(2025, 7, 19, 4, 31, 21, tzinfo=timezone.utc)

    def now(self) -> datetime:
        return self.current

    def advance(self, seconds: float) -> None:
        self.current += timedelta(seconds=seconds)


class RecordingLists(InMemoryPhoneLists):
    """The in-memory phone lists, remembering each lookup (forms, timeout) and each batch written
    (list, numbers, ttl)."""

    def __init__(self) -> None:
        super().__init__(ManualClock())
        self.lookups: list[tuple[tuple[str, ...], float]] = []
        self.batches: list[tuple[str, tuple[str, ...], int]] = []

    async def lookup(self, forms: Sequence[str], timeout_s: float) -> PhoneListing:
        self.lookups.append((tuple(forms), timeout_s))
        return await super().lookup(forms, timeout_s)

    async def blacklist_add(self, numbers: Sequence[str], ttl_s: int,
                            ttls: Optional[Sequence[int]] = None) -> set[str]:
        self.batches.append(("blacklist", tuple(numbers), ttl_s))
        return await super().blacklist_add(numbers, ttl_s, ttls)

    async def vip_add(self, numbers: Sequence[str]) -> set[str]:
        self.batches.append(("vip", tuple(numbers), 0))
        return await super().vip_add(numbers)
