"""The floors beside callflow on the real Asterisk: each route's work at its cheapest, in Python.

One process serves both routes (by ``agi_network_script``), on uvloop, with plain Protocol callbacks:

- ``checkphone``: read the header; one pipelined Redis round trip (``GET phone:blacklist:N`` and
  ``SISMEMBER phone:vip N`` for ``agi_arg_1`` as given) on one raw connection shared by every
  session, parsed by hiredis; one ``EXEC MSet`` of the four variables; close.
- ``event``: read the header; the values in one ``GET FULL VARIABLE`` (callflow's own expression, so
  Asterisk does the same work for both); store the reply durably (appended to a file, one
  ``fdatasync`` per loop turn for every session that arrived in it); answer with one
  ``SET VARIABLE CALLFLOW_STATUS OK``; close.

    python -m bench.pbx_floor --port 4599 --redis-port 6379 --redis-db 9 --store /tmp/floor.log
"""
from __future__ import annotations

import argparse
import asyncio
import collections
import os
import signal
import sys
from typing import Any, Callable, Optional

import hiredis

from bench.floor_server import new_event_loop
from callflow.entrypoints.agi.dialplan_values import combined_expression
from callflow.entrypoints.agi.protocol import command_line

_MAX_HEADER = 16384
_READ_EVENT = command_line("GET FULL VARIABLE", combined_expression())
_EVENT_OK = b"SET VARIABLE CALLFLOW_STATUS OK\n"
_ANSWERS = {  # (blacklisted, vip) -> the four variables, CALLFLOW_STATUS last
    (b, v): (f"EXEC MSet PHONE_POLICY={'blacklist' if b else 'vip' if v else 'normal'},"
             f"PHONE_BLACKLISTED={b},PHONE_VIP={v},CALLFLOW_STATUS=OK\n").encode()
    for b in (0, 1) for v in (0, 1)
}


class RedisPipe(asyncio.Protocol):
    """One raw Redis connection: requests written as they come, replies matched in order."""

    def __init__(self) -> None:
        self.reader = hiredis.Reader()
        self.waiting: collections.deque[list[Any]] = collections.deque()  # [callback, replies still due, replies]
        self.transport: Optional[asyncio.Transport] = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def request(self, packed: bytes, replies: int, callback: Callable[[list[Any]], None]) -> None:
        self.waiting.append([callback, replies, []])
        self.transport.write(packed)  # type: ignore[union-attr]

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)
        while True:
            reply = self.reader.gets()
            if reply is False:
                return
            entry = self.waiting[0]
            entry[2].append(reply)
            entry[1] -= 1
            if entry[1] == 0:
                self.waiting.popleft()
                entry[0](entry[2])


class Store:
    """Append-only file; what arrived in one loop turn is written and fdatasync'ed together."""

    def __init__(self, path: str) -> None:
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self.pending: list[bytes] = []
        self.done: list[Callable[[], None]] = []
        self.loop = asyncio.get_running_loop()

    def put(self, record: bytes, done: Callable[[], None]) -> None:
        if not self.pending:
            self.loop.call_soon(self.flush)
        self.pending.append(record)
        self.done.append(done)

    def flush(self) -> None:
        records, done = self.pending, self.done
        self.pending, self.done = [], []
        os.write(self.fd, b"".join(records))
        os.fdatasync(self.fd)
        for callback in done:
            callback()


class FloorSession(asyncio.Protocol):
    redis: RedisPipe
    store: Store

    def __init__(self) -> None:
        self.buffer = b""
        self.step = 0  # 0: header; 1: waiting for the command's reply; 2: the answer's reply
        self.transport: Optional[asyncio.Transport] = None
        self.route = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if self.step == 0:
            end = self.buffer.find(b"\n\n")
            if end < 0:
                if len(self.buffer) > _MAX_HEADER:
                    self.transport.close()  # type: ignore[union-attr]
                return
            header, self.buffer = self.buffer[:end + 1], self.buffer[end + 2:]
            self.step = 1
            self._start(header)
        while b"\n" in self.buffer:
            line, _, self.buffer = self.buffer.partition(b"\n")
            if line.startswith(b"HANGUP"):
                continue
            if self.step == 2:
                self.transport.close()  # type: ignore[union-attr]
                return
            if self.route == b"event":
                self.step = 2
                self.store.put(line + b"\n", self._event_stored)

    def _start(self, header: bytes) -> None:
        fields = dict(line.split(b": ", 1) for line in header.split(b"\n") if b": " in line)
        self.route = fields.get(b"agi_network_script", b"").split(b"?", 1)[0]
        if self.route == b"checkphone":
            number = fields.get(b"agi_arg_1") or fields.get(b"agi_callerid", b"")
            packed = (hiredis.pack_command((b"GET", b"phone:blacklist:" + number))
                      + hiredis.pack_command((b"SISMEMBER", b"phone:vip", number)))
            self.redis.request(packed, 2, self._checkphone_answer)
        elif self.route == b"event":
            self.transport.write(_READ_EVENT)  # type: ignore[union-attr]
        else:
            self.transport.close()  # type: ignore[union-attr]

    def _checkphone_answer(self, replies: list[Any]) -> None:
        self.step = 2
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(_ANSWERS[(int(replies[0] is not None), int(replies[1] == 1))])

    def _event_stored(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(_EVENT_OK)

    def eof_received(self) -> bool:
        return False


async def serve(host: str, port: int, redis_port: int, redis_db: int, store: str) -> None:
    loop = asyncio.get_running_loop()
    _, pipe = await loop.create_connection(RedisPipe, "127.0.0.1", redis_port)
    selected = loop.create_future()
    pipe.request(hiredis.pack_command((b"SELECT", str(redis_db).encode())), 1, selected.set_result)
    await selected
    FloorSession.redis = pipe
    FloorSession.store = Store(store)
    server = await loop.create_server(FloorSession, host, port, backlog=4096, reuse_address=True)
    print(f"pbx floor listening on {host}:{server.sockets[0].getsockname()[1]}", flush=True)
    stop = loop.create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda: stop.done() or stop.set_result(None))
    await stop
    server.close()


def main(argv: Optional[list[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="bench.pbx_floor", description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--redis-port", type=int, default=6379)
    p.add_argument("--redis-db", type=int, default=9)
    p.add_argument("--store", required=True, help="the event records' file")
    p.add_argument("--loop", choices=("auto", "uvloop", "asyncio"), default="auto")
    args = p.parse_args(argv)
    loop = new_event_loop(args.loop)
    try:
        loop.run_until_complete(serve(args.host, args.port, args.redis_port, args.redis_db, args.store))
    finally:
        loop.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
