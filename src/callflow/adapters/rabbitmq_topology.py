"""The broker topology (docs/reference.md, Events on RabbitMQ): exchange ``call.events`` (durable
topic) and one durable queue per routing key, named like it and bound with it. Shared by the publisher
and the tools that consume."""
from __future__ import annotations

from typing import Any, Optional

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractQueue

from callflow.domain.envelope import EXCHANGE


async def declare_exchange(channel: AbstractChannel) -> AbstractExchange:
    return await channel.declare_exchange(EXCHANGE, aio_pika.ExchangeType.TOPIC, durable=True)


QUEUE_TYPES = ("classic", "quorum")


async def declare_queue(
    channel: AbstractChannel, exchange: AbstractExchange, name: str, queue_type: str = "classic"
) -> AbstractQueue:
    """Declare the durable queue ``name`` and bind it to the exchange with routing key ``name``.

    ``quorum``: declared with ``x-queue-type: quorum`` (replicated over the cluster's nodes).
    ``classic``: declared without the argument, exactly as before the setting existed, so a
    deployment that does not set it redeclares its existing queues unchanged. RabbitMQ refuses
    (PRECONDITION_FAILED, closing the channel) a declaration whose type differs from the queue's.

    Not restored by the robust channel on reconnect (``robust=False``): the publisher declares each
    queue again the first time it uses it after a reconnect, so the channel keeps no list of every
    customer ever seen.
    """
    if queue_type not in QUEUE_TYPES:
        raise ValueError(f"queue type {queue_type!r} is not one of {QUEUE_TYPES}")
    arguments: Optional[dict[str, Any]] = {"x-queue-type": "quorum"} if queue_type == "quorum" else None
    queue = await channel.declare_queue(name, durable=True, arguments=arguments, **_not_robust(channel))
    await queue.bind(exchange, routing_key=name, **_not_robust(channel))
    return queue


def _not_robust(channel: AbstractChannel) -> dict:
    return {"robust": False} if isinstance(channel, aio_pika.abc.AbstractRobustChannel) else {}
