"""RabbitMQ for delivery tests: stop and start the broker's app, read a queue back and delete it."""
from __future__ import annotations

import asyncio
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aio_pika

from tests.support.event_schema import check_properties

ROOT = Path(__file__).resolve().parents[2]


async def rabbitmqctl(action: str) -> None:
    """``rabbitmqctl stop_app`` / ``start_app`` (seconds each), off the event loop."""
    await asyncio.get_running_loop().run_in_executor(
        None, lambda: subprocess.run(["rabbitmqctl", "-q", action], check=True, timeout=120, capture_output=True)
    )


@asynccontextmanager
async def broker_stopped() -> AsyncIterator[None]:
    """The broker's app is stopped inside the block; started again (and checked up) whatever happens."""
    await rabbitmqctl("stop_app")
    try:
        yield
    finally:
        await broker_started()


async def broker_started() -> None:
    await rabbitmqctl("start_app")
    await asyncio.get_running_loop().run_in_executor(
        None, lambda: subprocess.run([str(ROOT / "scripts" / "services"), "up"], check=True, timeout=180)
    )


async def take_all(amqp_url: str, queue: str, delete: bool = True) -> list[tuple[str, bytes]]:
    """Every message in ``queue`` as (message_id, body), in queue order; the queue is then deleted.

    Each message's AMQP properties are checked against docs/asyncapi.yaml (the queue is named after
    its routing key); the body is left to the test (some publish bodies that are not events)."""
    connection = await aio_pika.connect(amqp_url)
    try:
        channel = await connection.channel()
        found = await channel.declare_queue(queue, passive=True)
        messages: list[tuple[str, bytes]] = []
        while True:
            message = await found.get(no_ack=True, fail=False)
            if message is None:
                break
            check_properties(queue, {"message_id": message.message_id, "content_type": message.content_type,
                                     "delivery_mode": int(message.delivery_mode)})
            messages.append((message.message_id or "", message.body))
        if delete:
            await channel.queue_delete(queue)
        return messages
    finally:
        await connection.close()


def first_seen(ids: list[str]) -> list[str]:
    """Ids in the order of their first delivery (a redelivery keeps its first place)."""
    return list(dict.fromkeys(ids))
