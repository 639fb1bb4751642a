"""Publishes envelopes to RabbitMQ with publisher confirms and ``mandatory`` (aio-pika).

Start-up never waits for the broker: ``start()`` connects in the background. The broker is one URL
or a cluster's nodes (``CALLFLOW_AMQP_URL``), walked in order on the first connect and on every
reconnect (ADR 0105): losing the node we are connected to costs a reconnect to the next one that
answers. A publish while no node is connected fails at once, so the event stays in the outbox and
the relay sends it again (same ``message_id``) once connected. Each publish has its own confirm;
many are in flight together on one channel. Each queue is declared on a short-lived channel of its
own, so a declaration RabbitMQ refuses (a queue that exists with another type, ADR 0106) closes only
that channel, not the one carrying the confirms of every other customer.
"""
from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any, Optional, Union, cast

import aio_pika
import aiormq
from aio_pika.abc import AbstractChannel, AbstractConnection, AbstractExchange
from aiormq import spec
from aiormq.exceptions import ChannelNotFoundEntity, ChannelPreconditionFailed

from callflow import metrics
from callflow.adapters.delivery.ports import PublishFailed
from callflow.adapters.rabbitmq_nodes import connect_first
from callflow.adapters.rabbitmq_topology import declare_exchange, declare_queue
from callflow.amqp_urls import node_address, parse_amqp_urls, with_heartbeat
from callflow.domain.envelope import EXCHANGE, INVALID_ROUTING_KEY, EventEnvelope
from callflow.logging import get_logger

_log = get_logger("callflow.broker")
_PERSISTENT = int(aio_pika.DeliveryMode.PERSISTENT)
_PUBLISHED = {True: metrics.EVENTS_PUBLISHED.labels(kind="invalid"), False: metrics.EVENTS_PUBLISHED.labels(kind="event")}
REFUSED_RETRY_S = 5.0  # a refused declaration costs one channel; an operator's fix shows within seconds
_REFUSED_LOG_EVERY = 12  # one error line per queue at the first refusal, then about once a minute


class RabbitMQPublisher:
    """Implements the EventPublisher port on one connection (to the first node of the list that
    answers) and one confirming channel; reconnects by itself, through the whole list each time."""

    def __init__(
        self,
        url: Union[str, Sequence[str]],
        confirm_timeout_s: float,
        connect_timeout_s: float = 5.0,
        reconnect_interval_s: float = 1.0,
        queue_type: str = "classic",
        refused_retry_s: float = REFUSED_RETRY_S,
    ) -> None:
        self._urls = tuple(with_heartbeat(u) for u in (parse_amqp_urls(url) if isinstance(url, str) else url))
        self._confirm_timeout_s = confirm_timeout_s
        self._connect_timeout_s = connect_timeout_s
        self._reconnect_interval_s = reconnect_interval_s
        self._queue_type = queue_type
        self._refused_retry_s = refused_retry_s
        self._connection: Optional[AbstractConnection] = None
        self._channel: Optional[AbstractChannel] = None
        self._exchange: Optional[AbstractExchange] = None
        self._lost: Optional[asyncio.Event] = None  # set when this connection or its channel goes away
        self._queues: dict[str, asyncio.Future[None]] = {}
        self._refused: dict[str, tuple[float, str]] = {}  # queue -> (when to declare it again, reason)
        self._refusals: dict[str, int] = {}  # queue -> refusals in a row (to log some, not all)
        self._connector: Optional[asyncio.Task[None]] = None
        self._closing = False
        self.node: Optional[str] = None  # host:port of the node connected to
        self._url: Optional[str] = None
        for other in self._urls:
            metrics.AMQP_NODE_CONNECTED.labels(node=node_address(other)).set(0)

    async def start(self) -> None:
        """Begin connecting in the background; returns at once."""
        if self._connector is None:
            self._closing = False
            self._connector = asyncio.ensure_future(self._stay_connected())

    async def wait_connected(self, timeout_s: float) -> bool:
        """True once connected (for tools and tests; the server never waits for this)."""
        deadline = time.monotonic() + timeout_s
        while not self.is_connected() and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        return self.is_connected()

    def is_connected(self) -> bool:
        connection, channel = self._connection, self._channel
        lost = self._lost
        if connection is None or channel is None or self._exchange is None or lost is None or lost.is_set():
            return False
        return connection.connected.is_set() and not connection.is_closed and not channel.is_closed

    async def publish(self, envelope: EventEnvelope) -> None:
        if not self.is_connected():
            raise self._failed("connection", "broker not connected")
        refused = self._refused.get(envelope.queue)
        if refused is not None and time.monotonic() < refused[0]:
            raise self._failed(refused[1], f"RabbitMQ refused to declare {envelope.queue}; tried again soon")
        started = time.perf_counter()
        lost = self._lost
        try:
            await self._publish(envelope)
        except asyncio.CancelledError:
            if _cancelled_by_caller() or lost is None or not lost.is_set() and self.is_connected():
                raise
            # aiormq cancels what waits on a connection it gives up as stuck (missed heartbeats)
            raise self._failed("connection", "connection given up as stuck") from None
        except asyncio.TimeoutError:
            raise self._failed("timeout", f"no confirm within {self._confirm_timeout_s}s") from None
        except aio_pika.exceptions.PublishError:
            self._queues.pop(envelope.queue, None)  # declared again on the next publish
            raise self._failed("returned", f"unroutable to {envelope.routing_key}") from None
        except aio_pika.exceptions.DeliveryError as exc:
            raise self._failed("nack", repr(exc)) from None
        except ChannelPreconditionFailed as exc:
            raise self._failed("queue_refused", str(exc)) from None
        except ChannelNotFoundEntity as exc:  # e.g. a classic queue whose node is down
            raise self._failed("queue_unavailable", str(exc)) from None
        except Exception as exc:  # connection or channel lost, channel error
            raise self._failed("connection", repr(exc)) from None
        metrics.PUBLISH_SECONDS.observe(time.perf_counter() - started)
        _PUBLISHED[envelope.routing_key == INVALID_ROUTING_KEY].inc()

    async def close(self) -> None:
        self._closing = True
        connector, self._connector = self._connector, None
        # A cancel that lands inside the client library's connect can come out as a failed connect
        # (an ordinary exception): the loop then sees _closing and ends, and the cancel is sent again
        # until the task is over, so a close never waits on a connection made after it began.
        while connector is not None and not connector.done():
            connector.cancel()
            await asyncio.wait({connector}, timeout=0.5)
        await self._drop_connection()

    async def _publish(self, envelope: EventEnvelope) -> None:
        """Straight to aiormq's ``basic_publish`` (what aio-pika's ``Exchange.publish`` ends in),
        without building an aio-pika ``Message``; the channel was opened with ``on_return_raises``,
        so a returned message raises ``PublishError`` and a nack ``DeliveryError``. ``timeout``
        bounds the whole publish, confirm included; ``wait=False``: the confirm is what we await,
        not the frame's write to the socket as well."""
        await self._queue_for(envelope.queue)
        assert self._channel is not None
        # aiormq's Channel takes wait=; its abstract base, which get_underlay_channel() names, does not declare it
        channel = cast(aiormq.Channel, await self._channel.get_underlay_channel())
        properties = spec.Basic.Properties(
            content_type="application/json", delivery_mode=_PERSISTENT, message_id=envelope.message_id
        )
        confirm = await channel.basic_publish(
            envelope.body, exchange=EXCHANGE, routing_key=envelope.routing_key, properties=properties,
            mandatory=True, timeout=self._confirm_timeout_s, wait=False,
        )
        if confirm is None:  # only a channel without publisher confirms answers nothing
            raise RuntimeError("the broker channel gives no publisher confirms")
        if not isinstance(confirm, spec.Basic.Ack):  # a nack or reject the channel did not raise
            raise aio_pika.exceptions.DeliveryError(None, confirm)

    # --- queues ---------------------------------------------------------------------------------
    async def _queue_for(self, name: str) -> None:
        """Declare (once per connection) the durable queue of a routing key, bound with that key."""
        declared = self._queues.get(name)
        if declared is not None and declared.done() and not declared.cancelled() and declared.exception() is None:
            return
        if declared is None:
            declared = asyncio.ensure_future(self._declare(name))
            declared.add_done_callback(lambda done: self._declared(name, done))
            self._queues[name] = declared
        # shielded: a caller timing out must not cancel the declaration others wait for
        await asyncio.wait_for(asyncio.shield(declared), self._confirm_timeout_s)

    async def _declare(self, name: str) -> None:
        """On a channel of its own: a refusal closes only that channel, neither the publishing one
        nor the declarations of other queues under way (the broker's error names one queue, but
        would fail every operation pending on a shared channel). Once per queue and connection."""
        assert self._connection is not None and self._exchange is not None
        channel = await self._connection.channel(publisher_confirms=False)
        try:
            await declare_queue(channel, self._exchange, name, self._queue_type)
        finally:
            if not channel.is_closed:
                await channel.close()

    def _declared(self, name: str, done: asyncio.Future[None]) -> None:
        failed = done.cancelled() or done.exception() is not None
        if failed and self._queues.get(name) is done:
            del self._queues[name]
        if not failed:
            self._refusals.pop(name, None)
            if self._refused.pop(name, None) is not None:
                _forget_refusal(name)
                _log.info("queue declared as configured; its events flow again", queue=name,
                          queue_type=self._queue_type)
        elif not done.cancelled() and isinstance(done.exception(), ChannelPreconditionFailed):
            self._refuse(name, "queue_refused", str(done.exception()))
        elif not done.cancelled() and isinstance(done.exception(), ChannelNotFoundEntity):
            self._refuse(name, "queue_unavailable", str(done.exception()))

    def _refuse(self, name: str, reason: str, reply: str) -> None:
        """RabbitMQ refused the declaration: PRECONDITION_FAILED (the queue exists with another type
        or other arguments) or NOT_FOUND (a classic queue whose node is down). Publishes to it fail
        at once, without a declaration each (events stay in the outbox), until the next try."""
        self._refused[name] = (time.monotonic() + self._refused_retry_s, reason)
        metrics.AMQP_QUEUE_REFUSED.labels(queue=name).set(1)
        refusals = self._refusals[name] = self._refusals.get(name, 0) + 1
        if refusals % _REFUSED_LOG_EVERY != 1:
            return
        if reason == "queue_unavailable":
            fix = "the queue's node is down (a classic queue lives on one node): bring it back; on a cluster use quorum queues"
        elif "x-queue-type" in reply:
            fix = (f"the queue exists with another type than CALLFLOW_AMQP_QUEUE_TYPE={self._queue_type}: set the "
                   "setting to the queue's type, or let its consumers empty it and delete it (callflow then "
                   "declares it as configured); see docs/ha/rabbitmq.md")
        else:
            fix = "the queue exists with other arguments than callflow declares: delete it once its consumers emptied it"
        _log.error("RabbitMQ refuses to declare the queue; its events wait in the outbox", queue=name,
                   queue_type=self._queue_type, broker_reply=reply, refusals=refusals,
                   retry_every_s=self._refused_retry_s, fix=fix)

    # --- the connection ---------------------------------------------------------------------------
    async def _stay_connected(self) -> None:
        """Connect through the list, wait for the loss, go through the list again at once; a round
        where no node answers is retried every ``reconnect_interval_s``. Logged once per outage,
        then every 60 rounds, not once per try."""
        failed_rounds = 0
        lost_at: Optional[float] = None
        lost_url: Optional[str] = None
        while not self._closing:
            try:
                await self._connect(lost_url)
            except Exception as exc:
                if self._closing:
                    return
                if failed_rounds % 60 == 0:
                    _log.warning("broker unreachable, events wait in the outbox", error=str(exc),
                                 attempts=failed_rounds + 1, retry_every_s=self._reconnect_interval_s)
                failed_rounds += 1
                await asyncio.sleep(self._reconnect_interval_s)
                continue
            failed_rounds = 0
            if self._closing:  # connected while a close was under way: close() drops it
                return
            if lost_at is None:
                _log.info("broker connected", node=self.node)
            else:
                _log.info("broker reconnected", node=self.node, seconds=round(time.monotonic() - lost_at, 3))
            assert self._lost is not None
            await self._lost.wait()
            lost_at, lost_url = time.monotonic(), self._url
            _log.warning("broker connection lost, events wait in the outbox until it is back", node=self.node)
            await self._drop_connection()

    async def _connect(self, lost_url: Optional[str] = None) -> None:
        """The URLs in their order, except the one just lost, tried last: a node that stopped
        answering (rather than refusing) would cost a whole connect timeout first."""
        urls = [u for u in self._urls if u != lost_url] + ([lost_url] if lost_url in self._urls else [])
        connection, url, opened = await connect_first(urls, self._connect_timeout_s, self._open_channel)
        assert opened is not None
        channel, exchange = opened
        lost = asyncio.Event()
        connection.close_callbacks.add(lambda *_: lost.set())
        channel.close_callbacks.add(lambda *_: lost.set())  # a broken publishing channel: start afresh
        if self._queue_type != "quorum":
            # a classic queue lives on one node: declaring it again on the new connection finds out
            # whether that node is gone (refused, the event stays in the outbox). Quorum queues
            # outlive a minority of nodes, and declaring one again can wait, up to the cluster's
            # net_ticktime, for a node that stopped answering
            self._queues.clear()
        self._lost = lost
        self._connection, self._channel, self._exchange = connection, channel, exchange
        self.node, self._url = node_address(url), url
        metrics.AMQP_NODE_CONNECTED.labels(node=self.node).set(1)
        metrics.AMQP_CONNECTIONS.labels(node=self.node).inc()

    @staticmethod
    async def _open_channel(connection: AbstractConnection) -> Any:
        channel: Any = await connection.channel(publisher_confirms=True, on_return_raises=True)
        return channel, await declare_exchange(channel)

    async def _drop_connection(self) -> None:
        connection = self._connection
        if self.node is not None:
            metrics.AMQP_NODE_CONNECTED.labels(node=self.node).set(0)
        if self._lost is not None:
            self._lost.set()
        self._connection = self._channel = self._exchange = None
        if connection is not None:
            try:
                await asyncio.wait_for(connection.close(), 5.0)
            except Exception:  # the transport is gone already
                pass

    def _failed(self, reason: str, detail: str) -> PublishFailed:
        metrics.PUBLISH_ERRORS.labels(reason=reason).inc()
        return PublishFailed(reason, detail)


def _cancelled_by_caller() -> bool:
    """True when the task running the publish was asked to stop (Python 3.11+ can tell; before, a
    cancellation while the connection is still up is taken as the caller's)."""
    task = asyncio.current_task()
    cancelling = getattr(task, "cancelling", None)
    return bool(cancelling is not None and cancelling())


def _forget_refusal(name: str) -> None:
    try:
        metrics.AMQP_QUEUE_REFUSED.remove(name)
    except KeyError:
        pass
