"""Ports: what the use cases need from the world, in the domain's words.

Every port has a real adapter and an in-memory adapter (``adapters/in_memory.py``), both checked by
the same contract suite under ``tests/contracts/``.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import AsyncIterator, Dict, List, Optional, Protocol, Sequence, Set

from callflow.domain.envelope import EventEnvelope
from callflow.domain.policy import PhoneListing
from callflow.service_layer.custody import Custody


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
                            ttls: Optional[Sequence[int]] = None) -> Set[str]:
        """Blacklist each of ``numbers`` for ``ttl_s`` seconds (0: until removed), or for its own
        ``ttls[i]`` when given; re-adding renews. Returns the numbers that were listed before the call."""
        ...

    async def blacklist_expiries(self, forms: Sequence[str]) -> Dict[str, Optional[int]]:
        """Seconds left for each listed one of ``forms`` (rounded up; None: no expiry); unlisted ones
        are left out."""
        ...

    async def blacklist_remove(self, forms: Sequence[str]) -> int:
        """Un-blacklist every one of ``forms``; returns how many entries there were."""
        ...

    def blacklist_members(self) -> AsyncIterator[str]:
        """Every blacklisted form, in no particular order."""
        ...

    async def vip_add(self, numbers: Sequence[str]) -> Set[str]:
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

    async def submit(self, envelope: EventEnvelope, wait_s: float, custody: Optional[Custody] = None) -> bool:
        """Accept ``envelope`` durably, then wait up to ``wait_s`` for the broker's confirm.

        Returns True when the broker confirmed it within ``wait_s``, False when it is held in the
        outbox and will be delivered later. Raises ``DeliveryRefused`` when it could not be taken into
        durable custody (the event is then NOT acknowledged). ``custody`` learns the outcome of the
        storing even when the caller is cancelled before it ends (or during the confirm wait).
        """
        ...


class DeliveryRefused(Exception):
    """The event could not be stored durably (disk full, outbox unusable)."""


class CallStats(Protocol):
    """Per-customer sets of the calls that reached each status (``stats:calls:{customer}:{status}``).

    Ids must be identifiers (``domain/identifiers``): any other raises ``InvalidEvent`` and builds no
    key. A set gets its expiry when it is created; adding to it later never extends it.
    """

    async def record(self, customer_id: str, call_status: str, call_id: str) -> None:
        """Add ``call_id`` to the set of ``call_status``. Raises ``CallStatsUnavailable``."""
        ...

    async def members(self, customer_id: str, call_status: str) -> Set[str]:
        """The call ids in the set (empty when there is none). Raises ``CallStatsUnavailable``."""
        ...

    async def counts(self, customer_id: str) -> Dict[str, int]:
        """``{call_status: number of calls}`` for every set of the customer. Raises ``CallStatsUnavailable``."""
        ...

    async def ttl(self, customer_id: str, call_status: str) -> Optional[float]:
        """Seconds until the set expires; None when it does not exist or never expires."""
        ...


class CallStatsUnavailable(Exception):
    """The call-status store did not answer (down, timed out, refused the command)."""


# --- delivery: outbox and publisher -----------------------------------------------------------
@dataclass(frozen=True)
class OutboxEntry:
    """An event held in the outbox: ``entry_id`` grows with every put, so it is the FIFO order."""

    entry_id: int
    envelope: EventEnvelope
    stored_at: float  # epoch seconds


@dataclass(frozen=True)
class OutboxStatus:
    """What an operator asks of the outbox (``callflow outbox status``)."""

    depth: int
    oldest_age_s: Optional[float]
    location: str


class OutboxUnavailable(Exception):
    """The outbox cannot take or give events (corrupt, unwritable, disk full, held by another process)."""


class Outbox(Protocol):
    """A durable FIFO of events not yet confirmed by the broker."""

    async def put(self, envelope: EventEnvelope) -> int:
        """Store ``envelope``; durable when it returns. Returns the entry id. Raises ``OutboxUnavailable``."""
        ...

    async def pending(self, after_id: int = 0, limit: int = 500) -> List[OutboxEntry]:
        """Up to ``limit`` entries with ids above ``after_id``, oldest first."""
        ...

    async def mark_delivered(self, entry_ids: Sequence[int]) -> None:
        """Forget these entries: the broker confirmed them. Unknown ids are ignored."""
        ...

    def depth(self) -> int:
        """How many entries wait (kept in memory, no I/O)."""
        ...

    @property
    def problem(self) -> Optional[str]:
        """Why the outbox cannot take events now (it is unusable, or its last put failed), else None."""
        ...

    async def status(self) -> OutboxStatus:
        """Depth, age of the oldest entry, where the outbox lives."""
        ...

    async def close(self) -> None:
        ...


class PublishFailed(Exception):
    """The broker did not confirm a message: ``reason`` is nack, returned, timeout, connection,
    queue_refused (its queue exists with other arguments) or queue_unavailable (its queue's node is down)."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


class EventPublisher(Protocol):
    """Gets one envelope to the broker, confirmed; many publishes may be in flight together."""

    async def publish(self, envelope: EventEnvelope) -> None:
        """Return once the broker confirmed the message as routed; else raise ``PublishFailed``.

        Messages are written to the broker in the order ``publish`` is called.
        """
        ...

    def is_connected(self) -> bool:
        """True when a publish can be attempted now (connection and channel open)."""
        ...

    async def close(self) -> None:
        ...


class DeliveryMonitor(Protocol):
    """Where the relay reports the outbox's state (a log line on a change, a gauge)."""

    def depth_changed(self, depth: int) -> None:
        ...

    def backlog_forming(self, depth: int, reason: str) -> None:
        """Events started to wait in the outbox (broker unreachable, a publish failed)."""
        ...

    def backlog_drained(self, delivered: int, seconds: float) -> None:
        """Everything that waited was delivered; live delivery resumed."""
        ...


# (CallStats: event section, Outbox and EventPublisher: delivery section, below.)
