"""The listener takes every connection waiting in the kernel's accept queue at once (ADR 0016)."""
from __future__ import annotations

import asyncio
import os
import socket
import time

import pytest

from callflow.entrypoints.agi.server import AgiServer
from tests.support.agi_routes import EchoRoute
from tests.support.fake_asterisk import call

pytestmark = pytest.mark.integration

BURST = 200


def _connect_all(port: int) -> list[socket.socket]:
    """BURST connections the kernel completes on its own (the server's loop is busy meanwhile)."""
    sockets = []
    for _ in range(BURST):
        sock = socket.socket()
        sock.setblocking(False)
        try:
            sock.connect(("127.0.0.1", port))
        except BlockingIOError:
            pass
        sockets.append(sock)
    return sockets


async def _burst(settings) -> tuple[int, str]:
    async with AgiServer(settings, {"echo": EchoRoute()}) as server:
        sockets = _connect_all(server.port)
        time.sleep(0.2)  # the loop is busy: the connections wait in the accept queue
        for _ in range(6):  # a few loop turns: accept, attach, connection_made
            await asyncio.sleep(0)
        taken = server.in_flight
        for sock in sockets:
            sock.close()
        answered = await call("127.0.0.1", server.port, route="echo")
    return taken, answered.status


def test_a_burst_in_the_accept_queue_is_taken_within_a_few_loop_turns_on_uvloop(make_settings):
    """uvloop's own server takes one connection per loop turn; the listener takes all 200 at once."""
    uvloop = pytest.importorskip("uvloop")
    loop = uvloop.new_event_loop()
    try:
        taken, status = loop.run_until_complete(_burst(make_settings(header_timeout_ms=5000)))
    finally:
        loop.close()
    assert taken == BURST and status == "OK"


async def test_the_same_burst_on_the_standard_loop(make_settings):
    """The standard asyncio loop, which the tests and Python 3.9 without uvloop use, behaves alike."""
    taken, status = await _burst(make_settings(header_timeout_ms=5000))
    assert taken == BURST and status == "OK"


async def _attached_socket_options(settings) -> tuple[int, bool]:
    async with AgiServer(settings, {"echo": EchoRoute()}) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        for _ in range(20):
            if server.in_flight:
                break
            await asyncio.sleep(0.01)
        [connection] = list(server._live)
        sock = connection.transport.get_extra_info("socket")
        options = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY), not os.get_blocking(sock.fileno())
        writer.close()
    return options


@pytest.mark.parametrize("loop_kind", ["asyncio", "uvloop"])
def test_an_attached_connection_is_non_blocking_with_nodelay(make_settings, loop_kind):
    """The event loop sets both as it attaches the socket: each reply goes out at once (no Nagle delay)."""
    if loop_kind == "uvloop":
        loop = pytest.importorskip("uvloop").new_event_loop()
    else:
        loop = asyncio.new_event_loop()
    try:
        nodelay, non_blocking = loop.run_until_complete(_attached_socket_options(make_settings()))
    finally:
        loop.close()
    assert nodelay != 0 and non_blocking
