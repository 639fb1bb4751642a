"""Publishes envelopes to RabbitMQ with publisher confirms and ``mandatory`` (aio-pika).

Start-up never waits for the broker: ``start()`` connects in the background, retrying until the
first connection; from then on aio-pika's robust connection reconnects by itself. A publish while
the broker is unreachable fails at once (it would otherwise wait for the reconnection), so the event
stays in the outbox. Each publish has its own confirm; many are in flight together on one channel.
"""
from __future__ import annotations

import asyncio
import time
from typing import Any, Dict, Optional

import aio_pika
from aio_pika.abc import AbstractExchange, AbstractRobustChannel, AbstractRobustConnection
from aiormq import spec

from callflow import metrics
from callflow.adapters.rabbitmq_topology import declare_exchange, declare_queue
from callflow.domain.envelope import EXCHANGE, INVALID_ROUTING_KEY, EventEnvelope
from callflow.logging import get_logger
from callflow.service_layer.ports import PublishFailed

_log = get_logger("callflow.broker")
_PERSISTENT = int(aio_pika.DeliveryMode.PERSISTENT)
_PUBLISHED = {True: metrics.EVENTS_PUBLISHED.labels(kind="invalid"), False: metrics.EVENTS_PUBLISHED.labels(kind="event")}


class RabbitMQPublisher:
    """Implements the EventPublisher port on one robust connection and one confirming channel."""

    def __init__(
        self, url: str, confirm_timeout_s: float, connect_timeout_s: float = 5.0, reconnect_interval_s: float = 1.0
    ) -> None:
        self._url = url
        self._confirm_timeout_s = confirm_timeout_s
        self._connect_timeout_s = connect_timeout_s
        self._reconnect_interval_s = reconnect_interval_s
        self._connection: Optional[AbstractRobustConnection] = None
        self._channel: Optional[AbstractRobustChannel] = None
        self._exchange: Optional[AbstractExchange] = None
        self._queues: Dict[str, "asyncio.Future[None]"] = {}
        self._connector: Optional["asyncio.Task[None]"] = None
        self._up = False  # last state logged, so an outage is one line, not one per retry

    async def start(self) -> None:
        """Begin connecting in the background; returns at once."""
        if self._connector is None:
            self._connector = asyncio.ensure_future(self._connect_until_up())

    async def wait_connected(self, timeout_s: float) -> bool:
        """True once connected (for tools and tests; the server never waits for this)."""
        deadline = time.monotonic() + timeout_s
        while not self.is_connected() and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        return self.is_connected()

    def is_connected(self) -> bool:
        connection, channel = self._connection, self._channel
        if connection is None or channel is None or self._exchange is None:
            return False
        return connection.connected.is_set() and not connection.is_closed and not channel.is_closed

    async def publish(self, envelope: EventEnvelope) -> None:
        if not self.is_connected():
            raise self._failed("connection", "broker not connected")
        started = time.perf_counter()
        try:
            await self._publish(envelope)
        except asyncio.TimeoutError:
            raise self._failed("timeout", f"no confirm within {self._confirm_timeout_s}s") from None
        except aio_pika.exceptions.PublishError:
            self._queues.pop(envelope.queue, None)  # declared again on the next publish
            raise self._failed("returned", f"unroutable to {envelope.routing_key}") from None
        except aio_pika.exceptions.DeliveryError as exc:
            raise self._failed("nack", repr(exc)) from None
        except Exception as exc:  # connection or channel lost, channel error
            raise self._failed("connection", repr(exc)) from None
        metrics.PUBLISH_SECONDS.observe(time.perf_counter() - started)
        _PUBLISHED[envelope.routing_key == INVALID_ROUTING_KEY].inc()

    async def close(self) -> None:
        self._up = False
        if self._connector is not None:
            self._connector.cancel()
            await asyncio.gather(self._connector, return_exceptions=True)
        if self._connection is not None:
            await self._connection.close()
        self._connection = self._channel = self._exchange = None

    async def _publish(self, envelope: EventEnvelope) -> None:
        """Straight to aiormq's ``basic_publish`` (what aio-pika's ``Exchange.publish`` ends in),
        without building an aio-pika ``Message``; the channel was opened with ``on_return_raises``,
        so a returned message raises ``PublishError`` and a nack ``DeliveryError``. ``timeout``
        bounds the whole publish, confirm included; ``wait=False``: the confirm is what we await,
        not the frame's write to the socket as well."""
        await self._queue_for(envelope.queue)
        assert self._channel is not None
        channel = await self._channel.get_underlay_channel()
        properties = spec.Basic.Properties(
            content_type="application/json", delivery_mode=_PERSISTENT, message_id=envelope.message_id
        )
        confirm = await channel.basic_publish(
            envelope.body, exchange=EXCHANGE, routing_key=envelope.routing_key, properties=properties,
            mandatory=True, timeout=self._confirm_timeout_s, wait=False,
        )
        if not isinstance(confirm, spec.Basic.Ack):  # a returned message when returns do not raise
            raise aio_pika.exceptions.PublishError(confirm, confirm.delivery)

    async def _queue_for(self, name: str) -> None:
        """Declare (once per connection) the durable queue of a routing key, bound with that key."""
        declared = self._queues.get(name)
        if declared is not None and declared.done() and not declared.cancelled() and declared.exception() is None:
            return
        if declared is None:
            assert self._channel is not None and self._exchange is not None
            declared = asyncio.ensure_future(declare_queue(self._channel, self._exchange, name))
            declared.add_done_callback(lambda done: self._forget_failed(name, done))
            self._queues[name] = declared
        # shielded: a caller timing out must not cancel the declaration others wait for
        await asyncio.wait_for(asyncio.shield(declared), self._confirm_timeout_s)

    def _forget_failed(self, name: str, done: "asyncio.Future[None]") -> None:
        if (done.cancelled() or done.exception() is not None) and self._queues.get(name) is done:
            del self._queues[name]

    def _failed(self, reason: str, detail: str) -> PublishFailed:
        metrics.PUBLISH_ERRORS.labels(reason=reason).inc()
        return PublishFailed(reason, detail)

    async def _connect_until_up(self) -> None:
        """Retry at the robust connection's own interval: a refused connection costs nothing, and a
        longer wait would only delay the events stored meanwhile. Logged once, then every 60 tries."""
        attempt = 0
        while True:
            try:
                await self._connect()
                return
            except Exception as exc:
                if attempt % 60 == 0:
                    _log.warning("broker unreachable, events wait in the outbox", error=repr(exc),
                                 attempts=attempt + 1, retry_every_s=self._reconnect_interval_s)
                attempt += 1
                await asyncio.sleep(self._reconnect_interval_s)

    async def _connect(self) -> None:
        connection = await aio_pika.connect_robust(
            self._url, timeout=self._connect_timeout_s, reconnect_interval=self._reconnect_interval_s
        )
        try:
            channel: Any = await connection.channel(publisher_confirms=True, on_return_raises=True)
            exchange = await declare_exchange(channel)
        except Exception:
            await connection.close()
            raise
        connection.reconnect_callbacks.add(self._on_reconnect)
        connection.close_callbacks.add(self._on_connection_lost)
        self._connection, self._channel, self._exchange = connection, channel, exchange
        self._up = True
        _log.info("broker connected")

    def _on_reconnect(self, *_: Any) -> None:
        self._queues.clear()  # the broker may have lost our queues (or been replaced); declare lazily
        if not self._up:
            self._up = True
            _log.info("broker reconnected")

    def _on_connection_lost(self, *_: Any) -> None:
        if self._up:
            self._up = False
            _log.warning("broker connection lost, events wait in the outbox until it is back")
