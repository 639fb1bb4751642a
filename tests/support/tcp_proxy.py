"""A TCP forwarder on a free loopback port, to stand for one broker node in front of the shared one.

``cut()`` closes every connection through it (as a node that died would) and keeps listening, so a
client that comes back is served again; ``close()`` stops listening too.
"""
from __future__ import annotations

import asyncio
from typing import Optional

from tests.support.redis_process import free_port


class TcpProxy:
    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        self.port = free_port()
        self._target = (target_host, target_port)
        self._server: Optional[asyncio.AbstractServer] = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._pumps: list[asyncio.Future[None]] = []
        self.accepted = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)

    def cut(self) -> None:
        for writer in list(self._writers):
            writer.transport.abort()  # a reset, not a goodbye
        self._writers.clear()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        self.cut()
        for pump in self._pumps:
            pump.cancel()
        await asyncio.gather(*self._pumps, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self._target)
        except OSError:
            writer.transport.abort()
            return
        self._writers.update((writer, upstream_writer))
        self._pumps += [asyncio.ensure_future(_pump(reader, upstream_writer)),
                        asyncio.ensure_future(_pump(upstream_reader, writer))]


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.transport.abort()
