"""EventDelivery and its relay on in-memory adapters: custody first, order, outages, flush."""
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable
from typing import Callable

import pytest

from callflow.adapters.clock import SystemClock
from callflow.adapters.delivery.event_delivery import OutboxEventDelivery
from callflow.adapters.delivery.pacing import Backoff
from callflow.adapters.delivery.relay import OutboxRelay
from callflow.adapters.in_memory_outbox import InMemoryOutbox
from callflow.adapters.in_memory_publisher import InMemoryPublisher
from callflow.domain.envelope import EventEnvelope
from callflow.service_layer.ports import DeliveryRefused


class RecordingMonitor:
    """A DeliveryMonitor that remembers what it was told."""

    def __init__(self) -> None:
        self.depths: list[int] = []
        self.transitions: list[tuple[str, object]] = []

    def depth_changed(self, depth: int) -> None:
        self.depths.append(depth)

    def backlog_forming(self, depth: int, reason: str) -> None:
        self.transitions.append(("forming", reason))

    def backlog_drained(self, delivered: int, seconds: float) -> None:
        self.transitions.append(("drained", delivered))


class Rig:
    """An EventDelivery over an in-memory outbox and publisher, with a running relay."""

    def __init__(self, confirm_delay_s: float = 0.0, max_in_flight: int = 512) -> None:
        self.outbox = InMemoryOutbox(SystemClock())
        self.publisher = InMemoryPublisher(confirm_delay_s=confirm_delay_s)
        self.monitor = RecordingMonitor()
        self.relay = OutboxRelay(
            self.outbox, self.publisher, self.monitor, max_in_flight=max_in_flight, page_size=7,
            backoff=Backoff(first_s=0.01, max_s=0.05), poll_s=0.01, audit_s=0.05,
        )
        self.delivery = OutboxEventDelivery(self.outbox, self.relay, SystemClock())

    def ids(self, queue: str) -> list[str]:
        return [e.message_id for e in self.publisher.messages(queue)]

    async def until(self, condition, timeout_s: float = 3.0) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while not condition():
            assert loop.time() < deadline, "condition not reached in time"
            await asyncio.sleep(0.005)


def event(n: int, customer: str = "c1") -> EventEnvelope:
    return EventEnvelope.of(f"call.events.{customer}", b'{"n": %d}' % n)


@pytest.fixture
async def started() -> AsyncIterator[Callable[..., Awaitable[Rig]]]:
    """Starts rigs (``await started(confirm_delay_s=...)``); stops them all at the end."""
    rigs: list[Rig] = []

    async def start(confirm_delay_s: float = 0.0, held: int = 0) -> Rig:
        rig = Rig(confirm_delay_s)
        for n in range(held):
            await rig.outbox.put(event(n))
        await rig.relay.start()
        rigs.append(rig)
        return rig

    yield start
    for rig in rigs:
        await rig.relay.stop()


@pytest.fixture
async def rig(started: Callable[..., Awaitable[Rig]]) -> Rig:
    return await started()


async def test_confirmed_event_leaves_the_outbox(rig: Rig) -> None:
    """With the broker up, submit returns True once confirmed and the outbox ends empty."""
    assert await rig.delivery.submit(event(1), wait_s=1.0) is True
    assert rig.ids("call.events.c1") == [event(1).message_id]
    await rig.until(lambda: rig.outbox.depth() == 0)


async def test_broker_down_queues_at_once_then_drains_in_order(rig: Rig) -> None:
    """Broker down: submit returns False without waiting; when it is back, all arrive in order."""
    rig.publisher.set_down(True)
    loop = asyncio.get_running_loop()
    began = loop.time()
    results = [await rig.delivery.submit(event(n, f"c{n % 2}"), wait_s=1.0) for n in range(40)]
    assert results == [False] * 40 and loop.time() - began < 0.5
    assert rig.outbox.depth() == 40 and rig.publisher.all_messages() == []
    rig.publisher.set_down(False)
    await rig.until(lambda: rig.outbox.depth() == 0)
    for customer in (0, 1):
        expected = [event(n, f"c{customer}").message_id for n in range(40) if n % 2 == customer]
        assert rig.ids(f"call.events.c{customer}") == expected
    assert rig.monitor.transitions == [("forming", "broker unreachable"), ("drained", 40)]
    assert rig.relay.live


async def test_new_events_wait_behind_older_ones(rig: Rig) -> None:
    """Events submitted while a backlog drains are delivered after it, never before."""
    rig.publisher.set_down(True)
    for n in range(30):
        await rig.delivery.submit(event(n), wait_s=0.0)
    rig.publisher.set_down(False)
    await asyncio.gather(*(rig.delivery.submit(event(n), wait_s=0.5) for n in range(30, 60)))
    await rig.until(lambda: rig.outbox.depth() == 0)
    assert rig.ids("call.events.c1") == [event(n).message_id for n in range(60)]


async def test_concurrent_submits_publish_together_in_order(started: Callable[..., Awaitable[Rig]]) -> None:
    """500 concurrent submits: confirms overlap (not one at a time), all arrive once, in order."""
    rig = await started(confirm_delay_s=0.01)
    results = await asyncio.gather(*(rig.delivery.submit(event(n), wait_s=2.0) for n in range(500)))
    assert all(results)
    assert rig.ids("call.events.c1") == [event(n).message_id for n in range(500)]
    assert rig.publisher.most_in_flight > 50


async def test_slow_confirm_answers_within_wait_and_delivers_once(started: Callable[..., Awaitable[Rig]]) -> None:
    """A confirm slower than wait_s: submit returns False in time, the event still lands exactly once."""
    rig = await started(confirm_delay_s=0.2)
    assert await rig.delivery.submit(event(1), wait_s=0.02) is False
    await rig.until(lambda: rig.outbox.depth() == 0)
    await asyncio.sleep(0.1)
    assert rig.ids("call.events.c1") == [event(1).message_id]


async def test_lost_confirms_are_redelivered_with_the_same_id(started: Callable[..., Awaitable[Rig]]) -> None:
    """An outage while confirms are awaited: every event arrives, repeats carry the same message_id."""
    rig = await started(confirm_delay_s=0.05)
    submits = [asyncio.ensure_future(rig.delivery.submit(event(n), wait_s=0.01)) for n in range(50)]
    await asyncio.sleep(0.02)
    rig.publisher.set_down(True)
    await asyncio.gather(*submits)
    await asyncio.sleep(0.05)
    rig.publisher.set_down(False)
    await rig.until(lambda: rig.outbox.depth() == 0)
    received = rig.ids("call.events.c1")
    assert set(received) == {event(n).message_id for n in range(50)}
    assert len(received) > 50  # some were sent twice: their confirm was lost
    assert rig.publisher.overlapping_publishes == 0


async def test_refused_custody_raises_delivery_refused(rig: Rig) -> None:
    """When the outbox cannot store, submit raises DeliveryRefused and nothing is published."""
    rig.outbox.refuse("disk full")
    with pytest.raises(DeliveryRefused, match="disk full"):
        await rig.delivery.submit(event(1), wait_s=1.0)
    assert rig.publisher.all_messages() == []


async def test_events_held_from_before_go_first(started: Callable[..., Awaitable[Rig]]) -> None:
    """Entries already in the outbox at start are delivered before newer ones."""
    rig = await started(held=10)
    await rig.delivery.submit(event(10), wait_s=1.0)
    await rig.until(lambda: rig.outbox.depth() == 0)
    assert rig.ids("call.events.c1") == [event(n).message_id for n in range(11)]
    assert rig.monitor.transitions[0] == ("forming", "held from before this start")


async def test_flush_delivers_what_waits(rig: Rig) -> None:
    """flush() cuts the retry wait short and returns 0 once everything is delivered."""
    rig.publisher.set_down(True)
    for n in range(5):
        await rig.delivery.submit(event(n), wait_s=0.0)
    rig.publisher.set_down(False)
    assert await rig.relay.flush(timeout_s=2.0) == 0
    assert len(rig.ids("call.events.c1")) == 5


async def test_flush_with_broker_down_returns_what_still_waits(rig: Rig) -> None:
    """flush() gives up at its timeout and says how many events stay stored."""
    rig.publisher.set_down(True)
    for n in range(3):
        await rig.delivery.submit(event(n), wait_s=0.0)
    loop = asyncio.get_running_loop()
    began = loop.time()
    assert await rig.relay.flush(timeout_s=0.1) == 3
    assert loop.time() - began < 0.5


async def test_entry_stored_outside_the_live_path_is_still_sent(rig: Rig) -> None:
    """An entry stored without being offered (a lost hand-over) is found by the audit and sent."""
    await rig.outbox.put(event(1))
    await rig.until(lambda: rig.outbox.depth() == 0, timeout_s=2.0)
    assert rig.ids("call.events.c1") == [event(1).message_id]


async def test_walk_never_resends_an_entry_awaiting_its_confirm(started: Callable[..., Awaitable[Rig]]) -> None:
    """A walk that starts while confirms are awaited skips those entries: each is sent exactly once."""
    rig = await started(confirm_delay_s=0.3)
    submits = [asyncio.ensure_future(rig.delivery.submit(event(n), wait_s=0.0)) for n in range(5)]
    await asyncio.gather(*submits)
    await rig.outbox.put(event(5))  # a stray: the audit starts a walk while the 5 are in flight
    await rig.until(lambda: rig.outbox.depth() == 0)
    assert sorted(rig.ids("call.events.c1")) == sorted(event(n).message_id for n in range(6))
    assert rig.publisher.overlapping_publishes == 0


async def test_no_wait_returns_once_stored_and_the_relay_publishes_at_once(started) -> None:
    """wait_s 0 (the default): submit returns when stored, before the confirm; the publish starts at once."""
    rig = await started(confirm_delay_s=0.3)
    loop = asyncio.get_running_loop()
    began = loop.time()
    assert await rig.delivery.submit(event(1), wait_s=0.0) is False
    assert loop.time() - began < 0.1 and rig.outbox.depth() == 1
    await asyncio.sleep(0)
    assert rig.publisher.in_flight == 1
    await rig.until(lambda: rig.outbox.depth() == 0)
    assert rig.ids("call.events.c1") == [event(1).message_id]
