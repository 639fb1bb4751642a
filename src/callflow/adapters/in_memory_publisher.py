"""The broker kept in memory: queues per routing key, confirms, and an outage switch for tests."""
from __future__ import annotations

import asyncio
from collections import defaultdict

from callflow.adapters.delivery.ports import PublishFailed
from callflow.domain.envelope import EventEnvelope


class InMemoryPublisher:
    """Implements the EventPublisher port: ``publish`` appends to the envelope's queue, then confirms.

    ``set_down(True)`` is a broker outage: publishes fail at once, and a publish whose confirm was
    still awaited fails too although its message is already queued (a lost confirm: the relay will
    send it again, with the same message_id). ``confirm_delay_s`` keeps confirms in flight a while.
    """

    def __init__(self, confirm_delay_s: float = 0.0) -> None:
        self.confirm_delay_s = confirm_delay_s
        self._queues: defaultdict[str, list[EventEnvelope]] = defaultdict(list)
        self._down = False
        self._closed = False
        self.in_flight = 0
        self.most_in_flight = 0
        self._in_flight_ids: defaultdict[str, int] = defaultdict(int)
        self.overlapping_publishes = 0  # the same message_id in flight twice at once

    def set_down(self, down: bool) -> None:
        self._down = down

    def is_connected(self) -> bool:
        return not self._down and not self._closed

    async def publish(self, envelope: EventEnvelope) -> None:
        if not self.is_connected():
            raise PublishFailed("connection", "broker not connected")
        self._queues[envelope.queue].append(envelope)
        self._in_flight_ids[envelope.message_id] += 1
        self.overlapping_publishes += self._in_flight_ids[envelope.message_id] > 1
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await asyncio.sleep(self.confirm_delay_s)
        finally:
            self.in_flight -= 1
            self._in_flight_ids[envelope.message_id] -= 1
        if not self.is_connected():
            raise PublishFailed("connection", "connection lost before the confirm")

    def messages(self, queue: str) -> list[EventEnvelope]:
        """What the queue received, in order (duplicates included)."""
        return list(self._queues.get(queue, []))

    def all_messages(self) -> list[EventEnvelope]:
        return [envelope for queue in self._queues.values() for envelope in queue]

    async def close(self) -> None:
        self._closed = True
