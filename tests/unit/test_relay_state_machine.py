"""The relay driven by random sequences of submits, broker outages, failed deletes and restarts.

Invariants (ADR 0036), checked after every step:
- per queue, events reach the broker first in the order they were submitted;
- nothing leaves the outbox before the broker confirmed it;
- only events that were taken into custody reach the broker (a refused submit publishes nothing);
and, once the broker is back and deletes work again, the outbox empties and every acknowledged
event has reached its queue.
"""
from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Optional

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from callflow.adapters.clock import SystemClock
from callflow.adapters.delivery.event_delivery import OutboxEventDelivery
from callflow.adapters.delivery.pacing import Backoff
from callflow.adapters.delivery.ports import OutboxUnavailable
from callflow.adapters.delivery.relay import OutboxRelay
from callflow.adapters.in_memory_outbox import InMemoryOutbox
from callflow.adapters.in_memory_publisher import InMemoryPublisher
from callflow.domain.envelope import EventEnvelope
from callflow.service_layer.ports import DeliveryRefused

CUSTOMERS = st.sampled_from(["c1", "c2", "c3"])


class QuietMonitor:
    def depth_changed(self, depth: int) -> None:
        pass

    def backlog_forming(self, depth: int, reason: str) -> None:
        pass

    def backlog_drained(self, delivered: int, seconds: float) -> None:
        pass


class ConfirmingPublisher(InMemoryPublisher):
    """Remembers which message ids the broker confirmed at least once."""

    def __init__(self) -> None:
        super().__init__(confirm_delay_s=0.002)
        self.confirmed: set[str] = set()

    async def publish(self, envelope: EventEnvelope) -> None:
        await super().publish(envelope)
        self.confirmed.add(envelope.message_id)


class WatchedOutbox(InMemoryOutbox):
    """Checks that every delete is of a confirmed event; can refuse the next deletes, as a full disk."""

    def __init__(self, publisher: ConfirmingPublisher) -> None:
        super().__init__(SystemClock())
        self._publisher = publisher
        self.failing_deletes = 0
        self.premature: list[str] = []  # message ids deleted before any confirm of theirs

    async def mark_delivered(self, entry_ids: Sequence[int]) -> None:
        if self.failing_deletes:
            self.failing_deletes -= 1
            raise OutboxUnavailable("disk full")
        held = self.snapshot()
        self.premature.extend(held[i].message_id for i in entry_ids
                              if i in held and held[i].message_id not in self._publisher.confirmed)
        await super().mark_delivered(entry_ids)


class RelayMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self.loop)
        self.publisher = ConfirmingPublisher()
        self.outbox = WatchedOutbox(self.publisher)
        self.relay: Optional[OutboxRelay] = None
        self.delivery: Optional[OutboxEventDelivery] = None
        self.submitted: dict[str, list[str]] = {}  # queue -> message ids in submission order
        self.acknowledged: set[str] = set()
        self.refused: set[str] = set()
        self.serial = 0
        self._start_relay()

    def _start_relay(self) -> None:
        self.relay = OutboxRelay(
            self.outbox, self.publisher, QuietMonitor(), max_in_flight=4, page_size=3,
            backoff=Backoff(first_s=0.005, max_s=0.02), poll_s=0.005, audit_s=0.02,
        )
        self.delivery = OutboxEventDelivery(self.outbox, self.relay, SystemClock())
        self.loop.run_until_complete(self.relay.start())

    def _envelope(self, customer: str) -> EventEnvelope:
        self.serial += 1
        return EventEnvelope.of(f"call.events.{customer}", b'{"n": %d}' % self.serial)

    async def _submit(self, envelope: EventEnvelope, wait_s: float) -> None:
        assert self.delivery is not None
        self.submitted.setdefault(envelope.queue, []).append(envelope.message_id)
        try:
            await self.delivery.submit(envelope, wait_s)
        except DeliveryRefused:
            self.refused.add(envelope.message_id)
        else:
            self.acknowledged.add(envelope.message_id)

    def _run_for(self, seconds: float) -> None:
        self.loop.run_until_complete(asyncio.sleep(seconds))

    @rule(customer=CUSTOMERS, wait_ms=st.sampled_from([0, 5]))
    def submit(self, customer: str, wait_ms: int) -> None:
        self.loop.run_until_complete(self._submit(self._envelope(customer), wait_ms / 1000))

    @rule(customers=st.lists(CUSTOMERS, min_size=2, max_size=8))
    def submit_together(self, customers: list[str]) -> None:
        """Calls in flight at once, more than the relay's publish slots."""
        envelopes = [self._envelope(customer) for customer in customers]
        self.loop.run_until_complete(asyncio.gather(*(self._submit(e, 0.005) for e in envelopes)))

    @rule(down=st.booleans())
    def broker(self, down: bool) -> None:
        self.publisher.set_down(down)

    @rule(count=st.integers(min_value=1, max_value=3))
    def deletes_fail(self, count: int) -> None:
        self.outbox.failing_deletes = count

    @rule(refusing=st.booleans())
    def disk(self, refusing: bool) -> None:
        self.outbox.refuse("disk full" if refusing else None)

    @rule(ms=st.sampled_from([1, 10, 30]))
    def time_passes(self, ms: int) -> None:
        self._run_for(ms / 1000)

    @rule(grace_ms=st.sampled_from([0, 20]))
    def restart(self, grace_ms: int) -> None:
        """The process stops (confirms still awaited get a grace) and a new relay starts on the same outbox."""
        assert self.relay is not None
        self.loop.run_until_complete(self.relay.stop(grace_ms / 1000))
        self._start_relay()

    @rule()
    def recovers(self) -> None:
        self._recover_and_drain()

    def _recover_and_drain(self) -> None:
        self.publisher.set_down(False)
        self.outbox.failing_deletes = 0
        self.outbox.refuse(None)
        deadline = self.loop.time() + 5.0
        while self.outbox.depth() and self.loop.time() < deadline:
            self._run_for(0.01)
        assert self.outbox.depth() == 0, f"outbox still holds {self.outbox.depth()} with the broker back"
        delivered = {e.message_id for e in self.publisher.all_messages()}
        assert self.acknowledged <= delivered, "an acknowledged event never reached the broker"

    @invariant()
    def first_arrivals_in_submission_order(self) -> None:
        for queue, order in self.submitted.items():
            position = {message_id: n for n, message_id in enumerate(order)}
            first: list[str] = []
            for envelope in self.publisher.messages(queue):
                if envelope.message_id not in first:
                    first.append(envelope.message_id)
            assert [position[m] for m in first] == sorted(position[m] for m in first), queue

    @invariant()
    def nothing_deleted_before_its_confirm(self) -> None:
        assert self.outbox.premature == []

    @invariant()
    def only_stored_events_reach_the_broker(self) -> None:
        delivered = {e.message_id for e in self.publisher.all_messages()}
        assert not delivered & self.refused

    def teardown(self) -> None:
        try:
            self._recover_and_drain()
        finally:
            if self.relay is not None:
                self.loop.run_until_complete(self.relay.stop(0.1))
            asyncio.set_event_loop(None)
            self.loop.close()


RelayMachine.TestCase.settings = settings(max_examples=40, stateful_step_count=25, deadline=None)
TestRelayMachine = RelayMachine.TestCase
