"""CALLFLOW_AMQP_QUEUE_TYPE against the real broker (the default node: a quorum queue needs no cluster).

A queue that already exists with the other type: RabbitMQ refuses the declaration (PRECONDITION_FAILED,
closing the channel). That queue's events wait in the outbox, every other customer's flow, the server
keeps serving and stays ready, and once the queue is gone the waiting events are delivered (ADR 0106).
"""
from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Optional

import aio_pika
import pytest
from aiormq.exceptions import ChannelPreconditionFailed

from callflow import metrics
from callflow.adapters.delivery.ports import PublishFailed
from callflow.adapters.rabbitmq_publisher import RabbitMQPublisher
from callflow.domain.envelope import EventEnvelope
from tests.conftest import AMQP_URL, REDIS_URL
from tests.integration.serve_support import metric_samples, readiness, sample, start_serve
from tests.support.broker import take_all
from tests.support.event_callers import EventCallers, forget_stats

pytestmark = pytest.mark.integration


def envelope(queue: str, n: int) -> EventEnvelope:
    return EventEnvelope.of(queue, b'{"n": %d}' % n)


async def declare(queue: str, queue_type: Optional[str]) -> None:
    """Declare ``queue`` durable (with ``x-queue-type`` when given) and bound as callflow binds it."""
    connection = await aio_pika.connect(AMQP_URL)
    async with connection:
        channel = await connection.channel()
        arguments = {"x-queue-type": queue_type} if queue_type else None
        declared = await channel.declare_queue(queue, durable=True, arguments=arguments)
        exchange = await channel.declare_exchange("call.events", aio_pika.ExchangeType.TOPIC, durable=True)
        await declared.bind(exchange, routing_key=queue)


async def delete(queue: str) -> None:
    connection = await aio_pika.connect(AMQP_URL)
    async with connection:
        channel = await connection.channel()
        await channel.queue_delete(queue)


@pytest.fixture
async def queue() -> AsyncIterator[str]:
    name = f"call.events.qtype-{uuid.uuid4().hex[:10]}"
    yield name
    await delete(name)


async def test_quorum_setting_declares_quorum_queues(queue: str) -> None:
    """With quorum, the queue callflow declares is a quorum queue: redeclaring it as classic is refused."""
    publisher = RabbitMQPublisher(AMQP_URL, confirm_timeout_s=5.0, queue_type="quorum")
    await publisher.start()
    try:
        assert await publisher.wait_connected(10.0)
        await publisher.publish(envelope(queue, 1))
    finally:
        await publisher.close()
    await declare(queue, "quorum")  # the same type: accepted
    with pytest.raises(ChannelPreconditionFailed):
        await declare(queue, None)
    assert [m for m, _ in await take_all(AMQP_URL, queue, delete=False)] == [envelope(queue, 1).message_id]


@pytest.mark.parametrize("existing, configured", [("classic", "quorum"), ("quorum", "classic")])
async def test_a_queue_of_the_other_type_holds_only_its_own_events(queue: str, existing: str, configured: str) -> None:
    """The refused queue's publishes fail as queue_refused (at once after the first), another queue
    on the same publisher is unaffected, and after the queue is deleted the next try declares it."""
    other = queue + "-ok"
    await declare(queue, existing if existing == "quorum" else None)
    publisher = RabbitMQPublisher(AMQP_URL, confirm_timeout_s=5.0, queue_type=configured, refused_retry_s=0.5)
    await publisher.start()
    try:
        assert await publisher.wait_connected(10.0)
        for n in (1, 2):
            with pytest.raises(PublishFailed) as failed:
                await publisher.publish(envelope(queue, n))
            assert failed.value.reason == "queue_refused"
        assert metrics.AMQP_QUEUE_REFUSED.labels(queue=queue)._value.get() == 1
        await publisher.publish(envelope(other, 1))
        assert publisher.is_connected(), "the refusal closed more than the declaring channel"
        await delete(queue)
        await asyncio.sleep(0.6)
        await publisher.publish(envelope(queue, 3))
        assert (("callflow_amqp_queue_refused", (("queue", queue),))) not in _samples()
    finally:
        await publisher.close()
    await declare(queue, configured if configured == "quorum" else None)  # now of the configured type
    assert [m for m, _ in await take_all(AMQP_URL, queue)] == [envelope(queue, 3).message_id]
    assert [m for m, _ in await take_all(AMQP_URL, other)] == [envelope(other, 1).message_id]


def _samples() -> set:
    return {(s.name, tuple(sorted(s.labels.items()))) for f in metrics.REGISTRY.collect() for s in f.samples}


async def test_mismatch_through_the_server_holds_events_and_delivers_them_once_fixed(tmp_path: Path) -> None:
    """``callflow serve`` with quorum and one customer's queue already classic: every call is answered
    OK, the other customer's events arrive, this one's wait in the outbox (metric, one error line
    with the fix, /readyz still 200), and arrive once an operator deleted the classic queue."""
    held, flowing = (f"qtype-{uuid.uuid4().hex[:10]}" for _ in range(2))
    held_queue, flowing_queue = f"call.events.{held}", f"call.events.{flowing}"
    await declare(held_queue, None)
    served = await start_serve(tmp_path, amqp_queue_type="quorum", amqp_reconnect_interval_s="0.2")
    callers = [EventCallers(held, parallel=2), EventCallers(flowing, parallel=2)]
    try:
        for caller in callers:
            caller.start(served.agi_port)
        await asyncio.sleep(1.5)
        for caller in callers:
            await caller.stop()
        samples = await _wait_metric(served.http_port, held_queue)
        assert sample(samples, "callflow_outbox_depth") >= len(callers[0].acknowledged) > 0
        status, report = await readiness(served.http_port)
        assert status == 200, report
        refused = served.events("RabbitMQ refuses to declare the queue; its events wait in the outbox")
        assert len(refused) == 1 and "CALLFLOW_AMQP_QUEUE_TYPE" in refused[0]["fix"], refused
        flowing_ids = await _call_ids(flowing_queue, len(callers[1].acknowledged), 10.0)
        assert callers[1].acknowledged <= flowing_ids
        assert callers[0].not_ok == callers[1].not_ok == 0
        await delete(held_queue)  # the operator's fix: the queue is declared again, as quorum
        held_ids = await _call_ids(held_queue, len(callers[0].acknowledged), 20.0)
        assert callers[0].acknowledged <= held_ids, "an acknowledged event was lost"
        await declare(held_queue, "quorum")  # declared again with the configured type
        assert served.process.returncode is None
        assert served.events("queue declared as configured; its events flow again")
    finally:
        for caller in callers:
            await caller.stop()
        await served.stop()
        for name in (held_queue, flowing_queue):
            await delete(name)
        for customer in (held, flowing):
            await forget_stats(REDIS_URL, customer)


async def _wait_metric(port: int, queue: str) -> dict:
    for _ in range(50):
        samples = await metric_samples(port)
        if sample(samples, "callflow_amqp_queue_refused", queue=queue) == 1:
            return samples
        await asyncio.sleep(0.1)
    raise AssertionError(f"callflow_amqp_queue_refused{{queue={queue}}} never became 1")


async def _call_ids(queue: str, expected: int, timeout_s: float) -> set:
    """The call ids in ``queue`` (read without taking them) once it holds ``expected`` messages."""
    connection = await aio_pika.connect(AMQP_URL)
    async with connection:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            channel = await connection.channel()
            try:
                found = await channel.declare_queue(queue, passive=True)
                count = found.declaration_result.message_count or 0
            except aio_pika.exceptions.ChannelNotFoundEntity:
                count = 0
            if count >= expected or loop.time() > deadline:
                break
            await asyncio.sleep(0.2)
    return {json.loads(body)["call_id"] for _, body in await take_all(AMQP_URL, queue, delete=False)}
