"""The broker topology of SPEC §2: exchange ``call.events`` (durable topic) and one durable queue per
routing key, named like it and bound with it. Shared by the publisher and the tools that consume."""
from __future__ import annotations

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractQueue

from callflow.domain.envelope import EXCHANGE


async def declare_exchange(channel: AbstractChannel) -> AbstractExchange:
    return await channel.declare_exchange(EXCHANGE, aio_pika.ExchangeType.TOPIC, durable=True)


async def declare_queue(channel: AbstractChannel, exchange: AbstractExchange, name: str) -> AbstractQueue:
    """Declare the durable queue ``name`` and bind it to the exchange with routing key ``name``.

    Not restored by the robust channel on reconnect (``robust=False``): the publisher declares each
    queue again the first time it uses it after a reconnect, so the channel keeps no list of every
    customer ever seen.
    """
    queue = await channel.declare_queue(name, durable=True, **_not_robust(channel))
    await queue.bind(exchange, routing_key=name, **_not_robust(channel))
    return queue


def _not_robust(channel: AbstractChannel) -> dict:
    return {"robust": False} if isinstance(channel, aio_pika.abc.AbstractRobustChannel) else {}
