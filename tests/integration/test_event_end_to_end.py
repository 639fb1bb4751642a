"""The event route as `callflow serve` wires it: fake Asterisk -> server -> outbox -> RabbitMQ, Redis stats."""
from __future__ import annotations

import asyncio
import uuid
from typing import Optional

import aio_pika
import pytest
import redis

from callflow.domain.envelope import INVALID_ROUTING_KEY, routing_key_for
from tests.conftest import AMQP_URL, REDIS_URL
from tests.support.broker import take_all
from tests.support.event_schema import check_message
from tests.support.fake_asterisk import call
from tests.support.served import served

pytestmark = pytest.mark.integration

HOST = "127.0.0.1"


async def wait_for_messages(queue: str, count: int, timeout_s: float = 90.0) -> list[tuple[str, bytes]]:
    """The queue's messages once ``count`` are there (the queue is deleted after reading).

    The event may be answered OK from the outbox before the queue exists, and other suites on this
    machine stop the broker now and then: both only delay the message, so both are waited out."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while asyncio.get_running_loop().time() < deadline:
        try:
            async with await aio_pika.connect(AMQP_URL) as connection, connection.channel() as channel:
                found = await channel.declare_queue(queue, passive=True)
                if found.declaration_result.message_count >= count:
                    return await take_all(AMQP_URL, queue)
        except (aio_pika.exceptions.ChannelNotFoundEntity, aio_pika.exceptions.AMQPConnectionError):
            pass
        await asyncio.sleep(0.2)
    raise AssertionError(f"{count} message(s) never reached {queue}")


async def find_invalid_report(marker: str, timeout_s: float = 90.0) -> Optional[dict]:
    """Our report in the shared call.events.invalid queue, acked; others' stay (unacked, requeued on close)."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while asyncio.get_running_loop().time() < deadline:
        try:
            async with await aio_pika.connect(AMQP_URL) as connection, connection.channel() as channel:
                queue = await channel.declare_queue(INVALID_ROUTING_KEY, passive=True)
                while True:
                    message = await queue.get(no_ack=False, fail=False)
                    if message is None:
                        break
                    if marker.encode() in message.body:  # others' reports are left alone
                        await message.ack()
                        return check_message(INVALID_ROUTING_KEY, message.body)
        except (aio_pika.exceptions.ChannelNotFoundEntity, aio_pika.exceptions.AMQPConnectionError):
            pass
        await asyncio.sleep(0.2)
    return None


async def test_an_event_reaches_its_customer_queue_and_the_stats(make_settings) -> None:
    """OK to Asterisk; one schema-valid message with a message id on call.events.{customer}; counted in Redis."""
    customer = "e2e-" + uuid.uuid4().hex[:12]
    call_id = "1752899481." + str(uuid.uuid4().int % 10**6)
    store = redis.Redis.from_url(REDIS_URL)
    try:
        async with served(make_settings()) as server:
            result = await call(HOST, server.port, route="event", uniqueid=call_id, variables={
                "CALL_ID": call_id, "CUSTOMER_ID": customer, "CALL_STATUS": "ringing", "DIRECTION": "inbound",
                "PHONE_DIAL": "0912406496"}, shared={call_id: {"AGENT_EXTEN": "1001"}})
            assert result.status == "OK" and result.variables.get("CALLFLOW_ERROR", "") == ""
            messages = await wait_for_messages(routing_key_for(customer), 1)
        [(message_id, body)] = messages
        event = check_message(routing_key_for(customer), body)
        assert message_id and (event["call_id"], event["agent_exten"], event["phone_number"]) == (
            call_id, "1001", "84912406496")
        assert store.smembers(f"stats:calls:{customer}:ringing") == {call_id.encode()}
        assert 0 < store.ttl(f"stats:calls:{customer}:ringing") <= 86400
    finally:
        store.delete(f"stats:calls:{customer}:ringing")
        store.close()


async def test_an_invalid_event_is_reported_on_the_invalid_queue(make_settings) -> None:
    """A customer id with a space: ERROR 'invalid: ...' to Asterisk, and a report with the raw values."""
    marker = uuid.uuid4().hex
    async with served(make_settings()) as server:
        result = await call(HOST, server.port, route="event", variables={
            "CALL_ID": f"1.{marker}", "CUSTOMER_ID": "bad customer", "CALL_STATUS": "ringing"})
        assert result.status == "ERROR" and result.variables["CALLFLOW_ERROR"].startswith("invalid: CUSTOMER_ID")
        report = await find_invalid_report(marker)
    assert report is not None and report["values"]["CUSTOMER_ID"] == "bad customer"
    assert "CUSTOMER_ID contains ' '" in report["reason"]
