"""Container Resources of event delivery: opened by ``init_resources()``, closed by ``shutdown_resources()``.

Order matters at shutdown: the relay flushes (while the outbox and the publisher are still open),
then stops; then the publisher and the outbox close.
"""
from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

from callflow.adapters.delivery.ports import DeliveryMonitor, EventPublisher, Outbox
from callflow.adapters.delivery.relay import OutboxRelay
from callflow.adapters.rabbitmq_publisher import RabbitMQPublisher
from callflow.adapters.sqlite_outbox import SQLiteOutbox
from callflow.logging import get_logger
from callflow.service_layer.ports import Clock

_log = get_logger("callflow.outbox")


async def sqlite_outbox_resource(path: Path, clock: Clock, synchronous: str) -> AsyncIterator[SQLiteOutbox]:
    """The outbox file for the process's life. Unusable: logged at start, every event refused."""
    outbox = SQLiteOutbox(path, clock, synchronous=synchronous)
    await outbox.open()
    try:
        yield outbox
    finally:
        await outbox.close()


async def rabbitmq_publisher_resource(
    urls: tuple[str, ...], confirm_timeout_s: float, reconnect_interval_s: float, queue_type: str = "classic"
) -> AsyncIterator[RabbitMQPublisher]:
    """Connects in the background (to the first of ``urls`` that answers): start-up never waits for RabbitMQ."""
    publisher = RabbitMQPublisher(urls, confirm_timeout_s=confirm_timeout_s, reconnect_interval_s=reconnect_interval_s,
                                  queue_type=queue_type)
    await publisher.start()
    try:
        yield publisher
    finally:
        await publisher.close()


async def outbox_relay_resource(
    outbox: Outbox, publisher: EventPublisher, monitor: DeliveryMonitor, max_in_flight: int, flush_timeout_s: float
) -> AsyncIterator[OutboxRelay]:
    """The relay runs for the process's life; at shutdown it flushes what it can within the timeout."""
    relay = OutboxRelay(outbox, publisher, monitor, max_in_flight=max_in_flight)
    await relay.start()
    try:
        yield relay
    finally:
        left = await relay.flush(flush_timeout_s)
        await relay.stop()
        if left:
            _log.warning("events stay in the outbox, delivered after the next start", depth=left)
        else:
            _log.info("outbox flushed: every event delivered")
