"""One FastAGI connection as an ``asyncio.Protocol`` (ADR 0013): bytes in, header and replies out.

No stream objects and no task per command: ``data_received`` splits lines and feeds them to the
pure ``protocol.ReplyReader`` as they arrive; a final reply resolves the one future a command
waits on. Bounded: the header by size and time, a reply line by ``max_line_bytes`` (the buffer
only ever holds one partial line). EOF or a reset at any point ends the connection cleanly.

Decisions: ADR 0012 (one command at a time), 0018 (a sequence sent from the reply callbacks).
"""
from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from random import random
from typing import Any, Optional

from callflow.entrypoints.agi import observe
from callflow.entrypoints.agi.protocol import AgiProtocolError, ReplyReader
from callflow.entrypoints.agi.session import AgiReply, AgiSessionClosed

_EOF = "Asterisk closed the connection"
#: single-line final replies seen before (``200 result=1``...): an ``AgiReply`` is immutable, so
#: one object per distinct short line serves every session without decoding or parsing again
_COMMON_REPLIES: dict[bytes, AgiReply] = {}
_COMMON_MAX_BYTES, _COMMON_MAX_LINES = 48, 512


def _remember(raw: bytes, reply: AgiReply) -> None:
    if len(_COMMON_REPLIES) >= _COMMON_MAX_LINES:  # many distinct values: start over, stay bounded
        _COMMON_REPLIES.clear()
    _COMMON_REPLIES[raw] = reply


def _header_end(buffer: bytes) -> tuple[int, int]:
    """Where the header's blank line starts and how long the end is: ``\\n\\n``, or ``\\n\\r\\n``
    from a client that ends its lines with CRLF (Asterisk does not); (-1, 0) when not there yet."""
    end = buffer.find(b"\n\n")
    crlf = buffer.find(b"\n\r\n", 0, end if end >= 0 else len(buffer))
    if crlf >= 0:
        return crlf, 3
    return (end, 2) if end >= 0 else (-1, 0)


class AgiConnection(asyncio.Protocol):
    """The wire side of one session. ``owner`` (the server) is told when the header is complete
    (``on_header(connection, block)``) and decides who may connect (``admit(connection, peername)``)."""

    def __init__(self, owner: Any, limits: Any, loop: Optional[asyncio.AbstractEventLoop] = None) -> None:
        self._owner = owner
        self._limits = limits
        # the loop, asked once: on Python < 3.12 every asyncio.get_running_loop() is a getpid() call
        self.loop = loop or asyncio.get_running_loop()
        self.transport: Optional[asyncio.Transport] = None
        self.started_at = 0.0
        self.peer = "?"
        self.admitted = True
        self.in_session = False  # the header was read: lines are replies now
        self.header_oversized = False  # over max_header_bytes: skipped to its end, answered ERROR
        self.closed: Optional[str] = None  # why no more command can be exchanged
        self.replies = ReplyReader(limits.max_line_bytes)
        self._buffer = b""
        self._timer: Optional[asyncio.TimerHandle] = None
        self._waiter: Optional[asyncio.Future[Any]] = None
        self._owed = 0  # commands sent whose final reply has not arrived (a deadline cut the wait)
        self._busy = False
        self._next: Optional[list[bytes]] = None  # a sequence's commands still to send (exchange_all)
        self._collected: list[AgiReply] = []  # a sequence's replies so far

    # --- asyncio.Protocol ------------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # asyncio's signature says BaseTransport; a stream socket's transport is a Transport (write, abort)
        self.transport = transport  # type: ignore[assignment]
        self.started_at = time.monotonic()
        peername = transport.get_extra_info("peername")
        admitted = self._owner.admit(self, peername)
        if admitted is None:  # refused: closed at once, without a byte
            self.closed = "refused"
            transport.close()
            return
        self.admitted = admitted
        self.peer = observe.format_peer(peername)
        # up to a quarter longer, at random: sockets opened together and left silent then time out
        # over half a second instead of in one loop turn, which calls arriving then would wait behind
        self._timer = self.loop.call_later(self._limits.header_timeout_s * (1.0 + random() / 4),
                                           self._header_timeout)

    def data_received(self, data: bytes) -> None:
        if self.closed is not None:
            return
        if not self.in_session:
            self._header_data(data)
            return
        if self._buffer:
            data = self._buffer + data
        start, limit = 0, self._limits.max_line_bytes
        end = data.find(b"\n")
        while end >= 0:
            if end - start > limit:
                return self._oversized()
            self._line(data[start:end])
            if self.closed is not None:
                return
            start = end + 1
            end = data.find(b"\n", start)
        self._buffer = data[start:] if start else data
        if len(self._buffer) > limit:  # no line break within the cap: never buffer more
            self._oversized()

    def eof_received(self) -> bool:
        self._lost(_EOF)
        return False  # let the transport close itself

    def connection_lost(self, exc: Optional[Exception]) -> None:
        self._lost(_EOF if exc is None else "connection lost")

    # --- header ----------------------------------------------------------------------------------
    def _header_data(self, data: bytes) -> None:
        if self.header_oversized:
            return self._skip_header(data)
        buffer = self._buffer + data if self._buffer else data
        end, size = _header_end(buffer)
        limit = self._limits.max_header_bytes
        if end < 0 or end + size > limit:
            if len(buffer) > limit or end >= 0:
                # too long to keep: read on to its end (within the header timeout), keeping nothing,
                # then the session answers CALLFLOW_STATUS=ERROR instead of closing in silence
                self.header_oversized = True
                observe.protocol_error("header_oversized")
                self._buffer = b""
                return self._skip_header(buffer)
            self._buffer = buffer
            return
        self._header_complete(buffer[:end + size], buffer[end + size:])

    def _skip_header(self, data: bytes) -> None:
        tail = self._buffer + data if self._buffer else data
        end, size = _header_end(tail)
        if end < 0:
            self._buffer = tail[-2:]  # a blank line may straddle two reads
            return
        self._header_complete(b"", tail[end + size:])

    def _header_complete(self, block: bytes, rest: bytes) -> None:
        if block and b"agi_" not in block:  # an HTTP request, a banner: no AGI header, nothing to answer
            return self._refuse("header_garbage")
        self._cancel_timer()
        self._buffer = b""
        self.in_session = True
        self._owner.on_header(self, block)
        if rest and self.closed is None:
            self.data_received(rest)  # lines that came with the header (an early HANGUP)

    def _header_timeout(self) -> None:
        self._timer = None
        self._refuse("header_timeout")

    def _refuse(self, kind: str) -> None:
        """The header could not be read: close, count, and let the owner forget the connection."""
        self._cancel_timer()
        self.closed = kind
        self._buffer = b""
        observe.header_refused(kind, self.peer)
        if self.transport is not None:
            self.transport.close()
        self._owner.release(self)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    # --- replies ---------------------------------------------------------------------------------
    def _line(self, raw: bytes) -> None:
        replies = self.replies
        reply = _COMMON_REPLIES.get(raw) if replies.idle else None
        if reply is None:
            try:
                reply = replies.feed(raw.decode("utf-8", "replace"))
            except AgiProtocolError:
                return self._oversized()
            if reply is None:
                return
            if reply.code == 200 and len(raw) <= _COMMON_MAX_BYTES and replies.idle and b"\n" not in raw:
                _remember(raw, reply)
        if self._owed == 0:  # a reply to no command: counted, never taken for the next one
            self.replies.unexpected += 1
            return
        self._owed -= 1
        waiter = self._waiter
        if self._owed == 0 and waiter is not None:
            if self._next is not None:
                return self._sequence_reply(waiter, reply)
            self._waiter = None
            if not waiter.done():  # done: cancelled by a deadline; the reply is dropped
                waiter.set_result(reply)

    def _sequence_reply(self, waiter: asyncio.Future[Any], reply: AgiReply) -> None:
        """A reply within ``exchange_all``: the next command goes out from here, at once."""
        if waiter.done():  # cut by a deadline: send nothing more
            self._waiter, self._next = None, None
            return
        self._collected.append(reply)
        if self._next:
            assert self.transport is not None
            self.transport.write(self._next.pop(0))
            self._owed = 1
            return
        self._waiter, self._next = None, None
        waiter.set_result(self._collected)

    def _oversized(self) -> None:
        self._buffer = b""
        self._end("reply line too long", "line_oversized")
        if self.transport is not None:
            self.transport.close()

    def _lost(self, reason: str) -> None:
        if self.closed is not None:
            return
        if not self.in_session:
            return self._refuse("header_truncated" if self._buffer or self.header_oversized else "probe")
        self._end(reason, "eof_mid_command" if self._waiter is not None else None)

    def _end(self, reason: str, kind: Optional[str]) -> None:
        """No more commands: the one waiting (if any) and every later one raise ``AgiSessionClosed``."""
        self.closed = reason
        if kind is not None:
            observe.protocol_error(kind)
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(AgiSessionClosed(reason))

    # --- commands --------------------------------------------------------------------------------
    async def exchange(self, data: bytes) -> AgiReply:
        """Send one encoded command and wait for its final reply. One at a time; a reply a deadline
        left unread is awaited (and dropped) first, so this command gets its own reply."""
        await self._claim()
        try:
            self._write(data)
            return await self._reply()
        finally:
            self._busy = False

    async def exchange_all(self, commands: Sequence[bytes]) -> list[AgiReply]:
        """Send encoded commands one at a time, each once the previous one's final reply is read
        (no pipelining), and return their replies. The next command is written from the reply's
        own callback: the task wakes once for the sequence, not once per command."""
        if len(commands) < 2:
            return [await self.exchange(data) for data in commands]
        await self._claim()
        try:
            self._next, self._collected = list(commands[1:]), []
            waiter = self._reply()
            self._write(commands[0])
            return await waiter  # resolved with the sequence's replies
        finally:
            self._busy = False
            self._next = None

    async def _claim(self) -> None:
        """The channel is this command's: none in progress, the session open, late replies read."""
        if self._busy:
            raise RuntimeError("one AGI command at a time: await the previous command first")
        if self.closed is not None:
            raise AgiSessionClosed(self.closed)
        self._busy = True
        if self._owed:
            try:
                await self._reply()
            except BaseException:
                self._busy = False
                raise

    def _write(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.write(data)
        self._owed = 1

    def _reply(self) -> asyncio.Future[Any]:
        """The future of the next final reply, or of a sequence's list of replies (``exchange_all``)."""
        waiter = self._waiter = self.loop.create_future()
        return waiter

    def close(self) -> None:
        """End the connection (pending writes are flushed first)."""
        if self.closed is None:
            self.closed = "closed by the server"
        self._cancel_timer()
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        """Drop the connection at once; a command waiting for its reply ends with ``AgiSessionClosed``."""
        if self.closed is None:
            self._end("connection aborted", None)
        self._cancel_timer()
        if self.transport is not None:
            self.transport.abort()
