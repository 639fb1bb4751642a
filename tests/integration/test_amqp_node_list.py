"""Several broker URLs (ADR 0105) against the default node: a dead first URL is passed over, in order.

The cluster's own faults (a node killed under load) are in ``test_amqp_cluster.py``.
"""
from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import aio_pika
import pytest

from callflow.adapters.rabbitmq_nodes import NoBrokerReachable, connect_first
from callflow.adapters.rabbitmq_publisher import RabbitMQPublisher
from callflow.domain.envelope import EventEnvelope
from tests.conftest import AMQP_URL
from tests.integration.test_cli_events import finish, publish, start_tail, wait_following
from tests.support.broker import take_all
from tests.support.redis_process import free_port
from tests.support.tcp_proxy import TcpProxy

pytestmark = pytest.mark.integration


def dead_url() -> str:
    return f"amqp://guest:guest@127.0.0.1:{free_port()}/"


async def test_connect_first_takes_the_first_url_that_answers() -> None:
    connection, url, _ = await connect_first([dead_url(), AMQP_URL, dead_url()], timeout_s=5.0)
    try:
        assert url == AMQP_URL and connection.connected.is_set()
    finally:
        await connection.close()


async def test_connect_first_names_every_node_when_none_answers() -> None:
    first, second = dead_url(), dead_url()
    with pytest.raises(NoBrokerReachable) as raised:
        await connect_first([first, second], timeout_s=2.0)
    for url in (first, second):
        assert url.split("@")[1].rstrip("/") in str(raised.value)
    assert "guest" not in str(raised.value)


async def test_publisher_passes_over_a_dead_first_node_and_delivers() -> None:
    """With the first URL refusing connections, the publisher connects to the second at start."""
    queue = f"call.events.nodes-{uuid.uuid4().hex[:10]}"
    publisher = RabbitMQPublisher(f"{dead_url()},{AMQP_URL}", confirm_timeout_s=5.0, reconnect_interval_s=0.2)
    await publisher.start()
    try:
        assert await publisher.wait_connected(10.0)
        assert publisher.node == "127.0.0.1:5672"
        sent = EventEnvelope.of(queue, b'{"n": 1}')
        await publisher.publish(sent)
    finally:
        await publisher.close()
    assert [m for m, _ in await take_all(AMQP_URL, queue)] == [sent.message_id]


async def test_events_tail_follows_through_the_first_node_that_answers(tmp_path: Path) -> None:
    customer = f"nodes-{uuid.uuid4().hex[:10]}"
    tail = await start_tail(tmp_path, customer, "--count", "1", amqp_url=f"{dead_url()}, {AMQP_URL}")
    await wait_following(tail)
    async with await aio_pika.connect(AMQP_URL) as connection:
        await publish(await connection.channel(), customer, {"customer_id": customer, "n": 1})
    code, lines, _ = await finish(tail)
    assert code == 0 and len(lines) == 1 and customer in lines[0]


async def test_events_tail_names_each_unreachable_node_without_passwords(tmp_path: Path) -> None:
    urls = f"amqp://guest:hidden@127.0.0.1:{free_port()}/,amqp://guest:hidden@127.0.0.1:{free_port()}/"
    tail = await start_tail(tmp_path, "acme", amqp_url=urls)
    code, _, err = await asyncio.wait_for(finish(tail), 30)
    assert code == 3
    assert "cannot be reached" in err and "hidden" not in err
    assert err.count("127.0.0.1:") >= 4, err  # both URLs (masked) and each node's own error


async def test_after_a_loss_the_next_node_is_tried_first_and_the_lost_one_last() -> None:
    """Two 'nodes' (forwarders to the default broker): the one in use is cut, the publisher goes
    to the other at once; that one cut, it comes back to the first. Publishing works on each."""
    first, second = TcpProxy(5672), TcpProxy(5672)
    await first.start()
    await second.start()
    queue = f"call.events.nodes-{uuid.uuid4().hex[:10]}"
    urls = [f"amqp://guest:guest@127.0.0.1:{proxy.port}/" for proxy in (first, second)]
    publisher = RabbitMQPublisher(",".join(urls), confirm_timeout_s=5.0, reconnect_interval_s=0.2)
    await publisher.start()
    sent = [EventEnvelope.of(queue, b'{"n": %d}' % n) for n in range(3)]
    try:
        assert await publisher.wait_connected(10.0)
        assert publisher.node == f"127.0.0.1:{first.port}"
        await publisher.publish(sent[0])
        first.cut()
        await _wait_node(publisher, f"127.0.0.1:{second.port}")
        await publisher.publish(sent[1])
        assert first.accepted == 1, "the node just lost was tried before the next one"
        second.cut()
        await _wait_node(publisher, f"127.0.0.1:{first.port}")
        await publisher.publish(sent[2])
    finally:
        await publisher.close()
        await first.close()
        await second.close()
    assert [m for m, _ in await take_all(AMQP_URL, queue)] == [e.message_id for e in sent]


async def _wait_node(publisher: RabbitMQPublisher, node: str) -> None:
    for _ in range(250):
        if publisher.is_connected() and publisher.node == node:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"not reconnected to {node}: {publisher.node}")
