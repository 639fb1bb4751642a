"""Connecting to the first RabbitMQ node that answers, from an ordered list (ADR 0105).

aio-pika connects to one URL; a cluster's nodes are several. The list is walked in order, every time
(first connect and each reconnect): a refused connection costs one round trip, so a dead first node
delays a connect by almost nothing on a LAN.
"""
from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Sequence
from typing import Callable, Optional, TypeVar

import aio_pika
from aio_pika.abc import AbstractConnection

from callflow.amqp_urls import node_address

T = TypeVar("T")


class NoBrokerReachable(ConnectionError):
    """No URL of the list gave a usable connection; the message names each node and its error."""


async def connect_first(
    urls: Sequence[str],
    timeout_s: float,
    setup: Optional[Callable[[AbstractConnection], Awaitable[T]]] = None,
) -> tuple[AbstractConnection, str, Optional[T]]:
    """(connection, url, what ``setup`` returned) for the first URL, in order, that connects and
    passes ``setup`` (e.g. opening a channel). A node that fails ``setup`` is closed and skipped."""
    errors: list[str] = []
    for url in urls:
        connection: Optional[AbstractConnection] = None
        try:
            connection = await asyncio.wait_for(aio_pika.connect(url, timeout=timeout_s), timeout_s + 1.0)
            prepared = await asyncio.wait_for(setup(connection), timeout_s) if setup is not None else None
            return connection, url, prepared
        except asyncio.CancelledError:
            if connection is not None:
                await _close_quietly(connection)
            raise
        except Exception as exc:  # refused, timed out, refused login, a channel error in setup
            errors.append(f"{node_address(url)}: {exc!r}")
            if connection is not None:
                await _close_quietly(connection)
    raise NoBrokerReachable("; ".join(errors))


async def _close_quietly(connection: AbstractConnection) -> None:
    try:
        await asyncio.wait_for(connection.close(), 5.0)
    except Exception:  # already gone: nothing to release
        pass
