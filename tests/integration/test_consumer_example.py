"""The consumer example in docs/consuming-events.md, run as written against RabbitMQ and Redis; and
the AsyncAPI check that every message the tests read with ``take_all`` goes through."""
from __future__ import annotations

import re
import types
import uuid
from pathlib import Path

import aio_pika
import pytest
import redis

from callflow.adapters.rabbitmq_topology import declare_exchange, declare_queue
from callflow.domain.envelope import EventEnvelope
from tests.conftest import AMQP_URL, REDIS_URL
from tests.support.broker import take_all
from tests.support.event_schema import check_message

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
EVENT = (b'{"timestamp": "2025-07-19T04:31:21.262589", "call_id": "1752899481.313", "direction": "inbound", '
         b'"customer_id": "CUSTOMER", "trunk": "0866801898", "unique_id": "1752899481.313", '
         b'"phone_number": "84912406496", "linked_id": "1752899481.313", "call_status": "ringing", '
         b'"queue_name": "ky_thuat", "bill_sec": "0", "duration": "0", "start_time": "2025-07-19 11:31:21", '
         b'"answer_time": "", "end_time": "", "agent_exten": "1001", "agent_account": "dh02", "dial_mode": "", '
         b'"channel": "PJSIP/1001-000000ce", "metrics": {"ivr": 0, "ring": 1, "queue": 1, "answer": 0, '
         b'"inbound": 1, "outbound": 0, "internal": 0}}')


def example_module() -> types.ModuleType:
    """The one Python block of docs/consuming-events.md, as a module."""
    text = (ROOT / "docs" / "consuming-events.md").read_text("utf-8")
    [code] = re.findall(r"```python\n(.*?)```", text, re.DOTALL)
    module = types.ModuleType("consumer_example")
    exec(compile(code, "docs/consuming-events.md", "exec"), module.__dict__)  # noqa: S102 - our own doc
    return module


async def publish(envelopes: list[EventEnvelope], **properties: object) -> None:
    """As callflow publishes (persistent, JSON, its message_id), unless ``properties`` say otherwise."""
    async with await aio_pika.connect(AMQP_URL) as connection:
        channel = await connection.channel()
        exchange = await declare_exchange(channel)
        for envelope in envelopes:
            await declare_queue(channel, exchange, envelope.routing_key)
            fields = dict(content_type="application/json", delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                          message_id=envelope.message_id)
            fields.update(properties)
            await exchange.publish(aio_pika.Message(envelope.body, **fields), routing_key=envelope.routing_key)


async def test_the_example_handles_an_event_delivered_twice_once() -> None:
    """Two events, the first delivered twice (same message_id): three messages arrive, two are handled."""
    customer = "consumer-" + uuid.uuid4().hex[:10]
    key = f"call.events.{customer}"
    first = EventEnvelope.of(key, EVENT.replace(b"CUSTOMER", customer.encode()))
    second = EventEnvelope.of(key, first.body.replace(b"ringing", b"answered"))
    example = example_module()
    handled: list[dict] = []

    async def handle(event: dict) -> None:
        handled.append(event)

    example.handle = handle
    seen = redis.Redis.from_url(REDIS_URL)
    try:
        await publish([first, first, second])
        arrived = await example.consume(customer, amqp_url=AMQP_URL, redis_url=REDIS_URL, stop_after=3)
        assert arrived == 3
        assert [event["call_status"] for event in handled] == ["ringing", "answered"]
        check_message(key, first.body)
        assert await take_all(AMQP_URL, key) == []  # everything acknowledged
    finally:
        seen.delete(*(f"call-events:seen:{e.message_id}" for e in (first, second)))
        async with await aio_pika.connect(AMQP_URL) as connection:
            await (await connection.channel()).queue_delete(key)


@pytest.mark.parametrize("properties, complaint", [
    ({"delivery_mode": aio_pika.DeliveryMode.NOT_PERSISTENT}, "delivery_mode"),
    ({"message_id": None}, "message_id"),
    ({"content_type": "text/plain"}, "content_type"),
])
async def test_take_all_refuses_a_message_outside_the_asyncapi_contract(properties: dict, complaint: str) -> None:
    """The properties check runs on every message a test reads back: a transient message, one
    without message_id or with another content type fails the reading test."""
    key = "call.events.asyncapi-" + uuid.uuid4().hex[:10]
    await publish([EventEnvelope.of(key, EVENT)], **properties)
    try:
        with pytest.raises(AssertionError, match=complaint):
            await take_all(AMQP_URL, key)
    finally:
        async with await aio_pika.connect(AMQP_URL) as connection:
            await (await connection.channel()).queue_delete(key)
