"""The EventPublisher contract, run against RabbitMQ (real queues, consumed back) and the in-memory twin."""
from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aio_pika
import pytest

from callflow.adapters.delivery.ports import EventPublisher, PublishFailed
from callflow.adapters.in_memory_publisher import InMemoryPublisher
from callflow.adapters.rabbitmq_publisher import RabbitMQPublisher
from callflow.domain.envelope import EventEnvelope


@dataclass(frozen=True)
class Received:
    body: bytes
    message_id: str
    content_type: str
    persistent: bool


def envelope(key: str, n: int) -> EventEnvelope:
    return EventEnvelope.of(key, b'{"n": %d, "name": "Nguy\xe1\xbb\x85n"}' % n)


class EventPublisherContract:
    """Behaviour every EventPublisher adapter must show; ``received(queue)`` reads a queue back."""

    @pytest.fixture
    def key(self) -> str:
        return f"call.events.test-{uuid.uuid4().hex[:12]}"

    async def received(self, queue: str) -> list[Received]:
        raise NotImplementedError

    async def test_published_message_carries_the_contract_properties(self, publisher: EventPublisher, key: str) -> None:
        """The queue of the routing key gets the body, message_id, JSON content type, persistent mode."""
        sent = envelope(key, 1)
        await publisher.publish(sent)
        assert await self.received(key) == [Received(sent.body, sent.message_id, "application/json", True)]

    async def test_concurrent_publishes_arrive_in_call_order(self, publisher: EventPublisher, key: str) -> None:
        """Many publishes in flight together all arrive, in the order publish was called."""
        sent = [envelope(key, n) for n in range(300)]
        await asyncio.gather(*(publisher.publish(item) for item in sent))
        assert [r.message_id for r in await self.received(key)] == [item.message_id for item in sent]

    async def test_each_routing_key_gets_its_own_queue(self, publisher: EventPublisher, key: str) -> None:
        """Two routing keys fill two queues named like them."""
        other = key + "-b"
        await publisher.publish(envelope(key, 1))
        await publisher.publish(envelope(other, 2))
        assert [r.message_id for r in await self.received(key)] == [envelope(key, 1).message_id]
        assert [r.message_id for r in await self.received(other)] == [envelope(other, 2).message_id]

    async def test_connected_once_started(self, publisher: EventPublisher) -> None:
        """A started publisher with a reachable broker says it is connected."""
        assert publisher.is_connected()


class TestInMemoryPublisher(EventPublisherContract):
    @pytest.fixture
    async def publisher(self) -> AsyncIterator[InMemoryPublisher]:
        publisher = InMemoryPublisher(confirm_delay_s=0.001)
        self._publisher = publisher
        yield publisher
        await publisher.close()

    async def received(self, queue: str) -> list[Received]:
        return [Received(e.body, e.message_id, "application/json", True) for e in self._publisher.messages(queue)]

    async def test_down_publisher_fails_at_once(self, publisher: InMemoryPublisher, key: str) -> None:
        """While down it is not connected and publishes fail with reason connection."""
        publisher.set_down(True)
        assert not publisher.is_connected()
        with pytest.raises(PublishFailed) as failed:
            await publisher.publish(envelope(key, 1))
        assert failed.value.reason == "connection"


@pytest.mark.integration
class TestRabbitMQPublisher(EventPublisherContract):
    @pytest.fixture
    async def publisher(self, amqp_url: str) -> AsyncIterator[RabbitMQPublisher]:
        self._declared: list[str] = []
        publisher = RabbitMQPublisher(amqp_url, confirm_timeout_s=5.0)
        await publisher.start()
        assert await publisher.wait_connected(10.0)
        self._reader = await aio_pika.connect(amqp_url)
        self._channel = await self._reader.channel()
        yield publisher
        await publisher.close()
        for name in self._declared:
            await self._channel.queue_delete(name)
        await self._reader.close()

    async def received(self, queue: str) -> list[Received]:
        self._declared.append(queue)
        found = await self._channel.declare_queue(queue, passive=True)
        out: list[Received] = []
        while True:
            message = await found.get(no_ack=True, fail=False)
            if message is None:
                return out
            persistent = message.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
            out.append(Received(message.body, message.message_id or "", message.content_type or "", persistent))

    async def test_unroutable_message_fails_then_queue_is_declared_again(
        self, publisher: RabbitMQPublisher, key: str
    ) -> None:
        """A queue deleted behind the publisher's back: the publish fails as returned, the next one lands."""
        await publisher.publish(envelope(key, 1))
        await self._channel.queue_delete(key)
        with pytest.raises(PublishFailed) as failed:
            await publisher.publish(envelope(key, 2))
        assert failed.value.reason == "returned"
        await publisher.publish(envelope(key, 3))
        assert [r.message_id for r in await self.received(key)] == [envelope(key, 3).message_id]

    async def test_unreachable_broker_fails_fast_and_start_does_not_wait(self, key: str) -> None:
        """With no broker listening, start returns at once and a publish fails as connection, quickly."""
        publisher = RabbitMQPublisher("amqp://guest:guest@127.0.0.1:1/", confirm_timeout_s=5.0)
        loop = asyncio.get_running_loop()
        began = loop.time()
        await publisher.start()
        try:
            assert not publisher.is_connected()
            with pytest.raises(PublishFailed) as failed:
                await publisher.publish(envelope(key, 1))
            assert failed.value.reason == "connection"
            assert loop.time() - began < 1.0
        finally:
            await publisher.close()
