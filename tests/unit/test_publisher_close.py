"""A close never waits on the publisher's connect loop, even when the client library turns the
cancel it receives during a connect into an ordinary connect failure."""
from __future__ import annotations

import asyncio

import pytest

from callflow.adapters import rabbitmq_publisher
from callflow.adapters.rabbitmq_publisher import RabbitMQPublisher


async def test_a_cancel_swallowed_inside_the_connect_still_ends_the_close(monkeypatch: pytest.MonkeyPatch) -> None:
    entered = asyncio.Event()
    connects = 0

    async def connect_that_turns_a_cancel_into_a_failure(*_args: object) -> None:
        nonlocal connects
        connects += 1
        entered.set()
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            raise ConnectionError("connection attempt aborted") from None

    monkeypatch.setattr(rabbitmq_publisher, "connect_first", connect_that_turns_a_cancel_into_a_failure)
    publisher = RabbitMQPublisher("amqp://guest:guest@127.0.0.1:5672/", confirm_timeout_s=1.0,
                                  reconnect_interval_s=0.01)
    await publisher.start()
    await asyncio.wait_for(entered.wait(), 2)
    closing = asyncio.ensure_future(publisher.close())
    done, _ = await asyncio.wait({closing}, timeout=2)
    assert done, "close() still waits on the connect loop"
    await asyncio.sleep(0.05)
    assert connects == 1  # no connect began after the close
    assert not publisher.is_connected()
