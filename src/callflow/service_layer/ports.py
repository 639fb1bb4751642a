"""Ports: what the use cases need from the world, in the domain's words.

``PhoneLists`` and ``CallStats`` each have a real adapter on Redis (``adapters/redis_phone_lists.py``,
``adapters/redis_call_stats.py``) and an in-memory one (``adapters/in_memory_phone_lists.py``,
``adapters/in_memory_call_stats.py``), both checked by the same contract suite under
``tests/contracts/``. ``Clock`` is ``adapters/clock.py`` (tests bring their own). ``EventDelivery`` is
``adapters/delivery/event_delivery.py`` in both wirings; the ports behind it (outbox, publisher)
belong to the delivery adapter: ``adapters/delivery/ports.py``.
"""
from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Sequence
from datetime import datetime
from typing import Optional, Protocol

from callflow.domain.envelope import EventEnvelope
from callflow.domain.policy import PhoneListing


class Clock(Protocol):
    """Where time comes from, so time rules can be tested."""

    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""
        ...


# --- checkphone -------------------------------------------------------------------------------
class PhoneLists(Protocol):
    """The blacklist (entries that may expire) and the VIP set, keyed by a number's written form."""

    async def lookup(self, forms: Sequence[str], timeout_s: float) -> PhoneListing:
        """Whether any of ``forms`` is blacklisted / VIP, in one round trip within ``timeout_s``.

        Raises ``PhoneListsUnavailable`` when the store did not answer in time or is unreachable.
        """
        ...

    async def blacklist_add(self, numbers: Sequence[str], ttl_s: int,
                            ttls: Optional[Sequence[int]] = None) -> set[str]:
        """Blacklist each of ``numbers`` for ``ttl_s`` seconds (0: until removed), or for its own
        ``ttls[i]`` when given; re-adding renews. Returns the numbers that were listed before the call."""
        ...

    async def blacklist_expiries(self, forms: Sequence[str]) -> dict[str, Optional[int]]:
        """Seconds left for each listed one of ``forms`` (rounded up; None: no expiry); unlisted ones
        are left out."""
        ...

    async def blacklist_remove(self, forms: Sequence[str]) -> int:
        """Un-blacklist every one of ``forms``; returns how many entries there were."""
        ...

    def blacklist_members(self) -> AsyncIterator[str]:
        """Every blacklisted form, in no particular order."""
        ...

    async def vip_add(self, numbers: Sequence[str]) -> set[str]:
        """Make each of ``numbers`` a VIP; returns those that were before the call."""
        ...

    async def vip_remove(self, forms: Sequence[str]) -> int:
        """Remove every one of ``forms`` from the VIP set; returns how many were in it."""
        ...

    def vip_members(self) -> AsyncIterator[str]:
        """Every VIP form, in no particular order."""
        ...


class PhoneListsUnavailable(Exception):
    """The phone lists' store did not answer in time or could not be reached."""


# --- event ------------------------------------------------------------------------------------
class EventDelivery(Protocol):
    """Takes an event into durable custody, then gets it to the broker (now or later, in order)."""

    def store(self, envelope: EventEnvelope, wait_s: float) -> Awaitable[Stored]:
        """Take ``envelope`` into durable custody: the awaitable ends once it is stored.

        It raises ``DeliveryRefused`` when the event could not be stored (it is then NOT
        acknowledged). ``wait_s`` bounds the wait of ``Stored.confirmed`` for the broker's confirm.
        """
        ...


class Stored(Protocol):
    """An event in durable custody, on its way to the broker."""

    async def confirmed(self) -> bool:
        """True when the broker confirmed it within the wait given to ``store``; False when it waits in
        the outbox and will be delivered later."""
        ...


class DeliveryRefused(Exception):
    """The event could not be stored durably (disk full, outbox unusable)."""


class CallStats(Protocol):
    """Per-customer sets of the calls that reached each status (``stats:calls:{customer}:{status}``).

    Ids must be identifiers (``domain/identifiers.py``): any other raises ``InvalidEvent`` and builds no
    key. A set gets its expiry when it is created; adding to it later never extends it.
    """

    async def record(self, customer_id: str, call_status: str, call_id: str) -> None:
        """Add ``call_id`` to the set of ``call_status``. Raises ``CallStatsUnavailable``."""
        ...

    async def members(self, customer_id: str, call_status: str) -> set[str]:
        """The call ids in the set (empty when there is none). Raises ``CallStatsUnavailable``."""
        ...

    async def counts(self, customer_id: str) -> dict[str, int]:
        """``{call_status: number of calls}`` for every set of the customer. Raises ``CallStatsUnavailable``."""
        ...

    async def ttl(self, customer_id: str, call_status: str) -> Optional[float]:
        """Seconds until the set expires; None when it does not exist or never expires."""
        ...


class CallStatsUnavailable(Exception):
    """The call-status store did not answer (down, timed out, refused the command)."""
