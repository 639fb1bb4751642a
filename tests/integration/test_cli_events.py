"""``callflow events tail`` against the real RabbitMQ: sees a customer's events, steals none."""
from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aio_pika
import pytest

from callflow.adapters.rabbitmq_topology import declare_exchange, declare_queue
from callflow.domain.envelope import routing_key_for
from tests.conftest import AMQP_URL
from tests.integration.cli_support import unique_id

pytestmark = pytest.mark.integration


def cli_environment(tmp_path: Path, amqp_url: str = AMQP_URL) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CALLFLOW_")}
    env.update(CALLFLOW_AMQP_URL=amqp_url, CALLFLOW_DATA_DIR=str(tmp_path / "data"))
    return env


async def start_tail(tmp_path: Path, *args: str, amqp_url: str = AMQP_URL) -> asyncio.subprocess.Process:
    """``python -m callflow events tail ARGS`` in a subprocess, its output piped."""
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "callflow", "events", "tail", *args, cwd=str(tmp_path),
        env=cli_environment(tmp_path, amqp_url), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )


async def wait_following(tail: asyncio.subprocess.Process) -> str:
    """Waits for the tail's 'following ...' line (its queue is bound from then on)."""
    assert tail.stderr is not None
    line = await asyncio.wait_for(tail.stderr.readline(), 15)
    assert b"following" in line, line
    return line.decode()


async def finish(tail: asyncio.subprocess.Process) -> tuple[int, list[str], str]:
    out, err = await asyncio.wait_for(tail.communicate(), 20)
    return tail.returncode or 0, out.decode().splitlines(), err.decode()


@pytest.fixture
async def broker() -> AsyncIterator[aio_pika.abc.AbstractChannel]:
    connection = await aio_pika.connect(AMQP_URL)
    async with connection:
        yield await connection.channel()


async def publish(channel: aio_pika.abc.AbstractChannel, customer: str, body: dict) -> None:
    exchange = await declare_exchange(channel)
    message = aio_pika.Message(json.dumps(body).encode(), content_type="application/json",
                               delivery_mode=aio_pika.DeliveryMode.PERSISTENT)
    await exchange.publish(message, routing_key=routing_key_for(customer))


async def test_tail_prints_the_customers_events_and_steals_none(tmp_path, broker) -> None:
    """Two events of the customer are printed in order; another customer's is not; the durable queue keeps both."""
    customer, other = unique_id("cust"), unique_id("other")
    durable = await declare_queue(broker, await declare_exchange(broker), routing_key_for(customer))
    try:
        tail = await start_tail(tmp_path, customer, "--count", "2", "--idle-timeout", "15")
        await wait_following(tail)
        await publish(broker, other, {"call_id": "not-mine"})
        await publish(broker, customer, {"call_id": "1752899481.1", "agent_account": "dh02 é"})
        await publish(broker, customer, {"call_id": "1752899481.2"})
        status, lines, _ = await finish(tail)
        assert status == 0
        assert [json.loads(line)["call_id"] for line in lines] == ["1752899481.1", "1752899481.2"]
        assert json.loads(lines[0])["agent_account"] == "dh02 é"
        kept = await broker.declare_queue(routing_key_for(customer), passive=True)
        assert kept.declaration_result.message_count == 2
    finally:
        await durable.delete(if_unused=False, if_empty=False)


async def test_tail_all_follows_every_customer(tmp_path, broker) -> None:
    """--all prints the events of every customer (ids with dots too), in the order published."""
    first, second = unique_id("cust"), unique_id("cust") + ".eu"
    tail = await start_tail(tmp_path, "--all", "--idle-timeout", "3")
    following = await wait_following(tail)
    assert "call.events.#" in following
    await publish(broker, first, {"call_id": "a", "customer_id": first})
    await publish(broker, second, {"call_id": "b", "customer_id": second})
    status, lines, _ = await finish(tail)
    seen = [json.loads(line) for line in lines]
    # other runs on the shared broker may publish meanwhile: ours are there, in order
    ours = [event["call_id"] for event in seen if event.get("customer_id") in (first, second)]
    assert status == 0 and ours == ["a", "b"]


@pytest.mark.parametrize("args", [[], ["cust", "--all"]])
async def test_tail_needs_one_customer_or_all(tmp_path, args) -> None:
    tail = await start_tail(tmp_path, *args)
    status, _, err = await finish(tail)
    assert status == 2 and "give a CUSTOMER or --all" in err


async def test_tail_idle_without_events_exits_1(tmp_path) -> None:
    """Nothing published within --idle-timeout: nothing printed, exit status 1."""
    tail = await start_tail(tmp_path, unique_id("quiet"), "--idle-timeout", "0.5")
    await wait_following(tail)
    status, lines, _ = await finish(tail)
    assert (status, lines) == (1, [])


async def test_tail_without_a_broker_exits_3(tmp_path) -> None:
    """No broker at the configured URL: one line naming it (password masked), exit status 3."""
    tail = await start_tail(tmp_path, "cust", amqp_url="amqp://guest:hunter2@127.0.0.1:1/")
    status, lines, err = await finish(tail)
    assert status == 3 and lines == []
    assert "RabbitMQ at amqp://guest:****@127.0.0.1:1/ cannot be reached" in err
    assert "hunter2" not in err and "Traceback" not in err


async def test_tail_refuses_a_customer_unsafe_in_a_routing_key(tmp_path) -> None:
    """A customer id with '#' (a wildcard in a binding) is refused with exit status 2."""
    tail = await start_tail(tmp_path, "cust.#")
    status, _, err = await finish(tail)
    assert status == 2 and "CUSTOMER contains '#'" in err


@pytest.mark.fault
async def test_tail_exits_3_when_the_broker_goes_away(tmp_path) -> None:
    """RabbitMQ stopped under a running tail: it says the connection was lost and exits 3 (no silent gap)."""
    tail = await start_tail(tmp_path, unique_id("lost"))
    await wait_following(tail)
    try:
        subprocess.run(["rabbitmqctl", "-q", "stop_app"], check=True, timeout=120, capture_output=True)
        status, _, err = await finish(tail)
    finally:
        subprocess.run(["rabbitmqctl", "-q", "start_app"], check=True, timeout=120, capture_output=True)
        if tail.returncode is None:
            tail.kill()
    assert status == 3 and "connection to RabbitMQ was lost" in err
