"""The listening sockets, drained of waiting connections on every loop turn (ADR 0016).

uvloop's own server accepts one connection per loop turn: under a burst the rest wait in the
kernel's accept queue, where no deadline and no lag estimate can see them (a caller hears dead
air, the server sees a loop that keeps up). Here each readable listening socket is accepted from
until it is empty (at most ``batch`` per turn), so a connection waits at most one loop turn
before the server counts it, and the session's deadline, counted from accept, is honest.

Decisions: ADR 0110 (worker processes on one port).
"""
from __future__ import annotations

import asyncio
import socket
from functools import partial
from typing import Callable

from callflow.entrypoints.agi.observe import log

_PAUSE_S = 1.0  # out of file descriptors: stop accepting this long (asyncio does the same)


def bind(host: str, port: int, backlog: int, reuse_port: bool = False) -> list[socket.socket]:
    """Non-blocking listening sockets for every address of ``host`` (``OSError`` when one cannot bind).

    ``reuse_port``: ``SO_REUSEPORT``, so that worker processes listen on one port and the kernel
    spreads the connections over them."""
    sockets: list[socket.socket] = []
    infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    try:
        for family, kind, proto, _, address in dict.fromkeys(infos):
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if reuse_port:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
            sock.listen(backlog)
            sock.setblocking(False)
    except OSError:
        for sock in sockets:
            sock.close()
        raise
    return sockets


class Listener:
    """Accepts on ``sockets`` and hands each connection to ``loop.connect_accepted_socket(factory)``."""

    def __init__(self, factory: Callable[[], asyncio.Protocol], sockets: list[socket.socket], batch: int = 512) -> None:
        self._factory = factory
        self._sockets = sockets
        self._batch = batch
        self._attaching: set[asyncio.Task[object]] = set()
        self._loop = asyncio.get_running_loop()
        for sock in sockets:
            self._loop.add_reader(sock.fileno(), self._ready, sock)

    @property
    def addresses(self) -> list[tuple[str, int]]:
        return [tuple(sock.getsockname()[:2]) for sock in self._sockets]

    def _ready(self, sock: socket.socket) -> None:
        loop, factory = self._loop, self._factory
        for _ in range(self._batch):
            try:
                conn, _ = sock.accept()
            except (BlockingIOError, InterruptedError, ConnectionAbortedError):
                return
            except OSError as error:  # EMFILE, ENFILE, ENOBUFS: let the loop breathe, try again later
                log.warning("agi accept failed, pausing", error=str(error), pause_s=_PAUSE_S)
                loop.remove_reader(sock.fileno())
                loop.call_later(_PAUSE_S, self._resume, sock)
                return
            # both loops make the socket non-blocking and set TCP_NODELAY as they attach it
            task = loop.create_task(loop.connect_accepted_socket(factory, conn))
            self._attaching.add(task)
            task.add_done_callback(partial(self._attached, conn))

    def _attached(self, conn: socket.socket, task: asyncio.Task[object]) -> None:
        self._attaching.discard(task)
        if task.cancelled() or task.exception() is not None:  # reset before it was attached
            conn.close()

    def _resume(self, sock: socket.socket) -> None:
        if sock.fileno() >= 0:
            self._loop.add_reader(sock.fileno(), self._ready, sock)

    def close(self) -> None:
        """Stop accepting; connections still in the kernel's queue are refused by the close."""
        for sock in self._sockets:
            if sock.fileno() >= 0:
                self._loop.remove_reader(sock.fileno())
                sock.close()
