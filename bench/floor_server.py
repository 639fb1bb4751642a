"""The floor: the cheapest correct FastAGI session in Python, measured beside callflow in every run.

Reads the agi_* block up to its blank line, sends one ``SET VARIABLE CALLFLOW_STATUS "OK"``, reads
the reply, closes (``--commands 4``: checkphone's four answers, one at a time, then closes). Same
runtime as callflow (asyncio, uvloop when installed), plain Protocol callbacks: whatever callflow
costs above this is callflow's own work.

    python -m bench.floor_server --port 4599
"""
from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from typing import Optional

from bench.loadgen import raise_nofile

_COMMAND = b'SET VARIABLE CALLFLOW_STATUS "OK"\n'
#: ``--commands 4``: checkphone's four answers (policy normal), one at a time, CALLFLOW_STATUS last
_CHECKPHONE_ANSWERS = (b'SET VARIABLE PHONE_BLACKLISTED "0"\n', b'SET VARIABLE PHONE_VIP "0"\n',
                       b'SET VARIABLE PHONE_POLICY "normal"\n', _COMMAND)
_MAX_HEADER = 16384


class FloorSession(asyncio.Protocol):
    commands = (_COMMAND,)

    def __init__(self) -> None:
        self.buffer = b""
        self.sent = 0
        self.transport: Optional[asyncio.Transport] = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if not self.sent:
            end = self.buffer.find(b"\n\n")
            if end < 0:
                if len(self.buffer) > _MAX_HEADER:
                    self.transport.close()  # type: ignore[union-attr]
                return
            self.buffer = self.buffer[end + 2 :]
            self._send_next()
        while b"\n" in self.buffer:  # the reply to the command sent (or an early HANGUP)
            self.buffer = self.buffer[self.buffer.index(b"\n") + 1 :]
            if self.sent == len(self.commands):
                self.transport.close()  # type: ignore[union-attr]
                return
            self._send_next()

    def _send_next(self) -> None:
        self.transport.write(self.commands[self.sent])  # type: ignore[union-attr]
        self.sent += 1

    def eof_received(self) -> bool:
        return False


async def serve(host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(FloorSession, host, port, backlog=4096, reuse_address=True)
    bound = server.sockets[0].getsockname()[1]
    print(f"floor server listening on {host}:{bound}", flush=True)
    stop = loop.create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda: stop.done() or stop.set_result(None))
    await stop
    server.close()


def new_event_loop(kind: str) -> asyncio.AbstractEventLoop:
    """uvloop when installed (as callflow uses it), else the standard loop."""
    if kind in ("auto", "uvloop"):
        try:
            import uvloop

            return uvloop.new_event_loop()
        except ImportError:
            if kind == "uvloop":
                raise
    return asyncio.new_event_loop()


def main(argv: Optional[list[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="bench.floor_server", description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--cpu", type=int, action="append", help="pin to these CPUs")
    p.add_argument("--loop", choices=("auto", "uvloop", "asyncio"), default="auto")
    p.add_argument("--commands", type=int, choices=(1, 4), default=1,
                   help="4: checkphone's four SET VARIABLEs one at a time (a reference for its round trips)")
    args = p.parse_args(argv)
    if args.commands == 4:
        FloorSession.commands = _CHECKPHONE_ANSWERS
    if args.cpu:
        os.sched_setaffinity(0, set(args.cpu))
    raise_nofile(65536)
    loop = new_event_loop(args.loop)
    try:
        loop.run_until_complete(serve(args.host, args.port))
    finally:
        loop.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
