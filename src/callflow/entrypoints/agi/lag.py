"""How far behind the event loop runs (ADR 0014): the input of overload shedding.

A connection waiting in the kernel's accept queue, or a reply waiting to be read, waits for the
loop's next turn; the server cannot see that wait directly, but a timer can: a tick due every
``interval_s`` that runs late by L seconds says every ready socket waited about L. ``behind_s``
is the smaller of the last two lateness samples, so one slow turn (a collection, a burst of log
lines) does not shed calls, while a loop that stays behind does.
"""
from __future__ import annotations

import asyncio
import time
from typing import Optional


class LoopLag:
    """A tick every ``interval_s`` measuring its own lateness. ``start`` inside the loop, ``stop`` after."""

    def __init__(self, interval_s: float = 0.01) -> None:
        self._interval_s = interval_s
        self._due = 0.0
        self._last = 0.0
        self._previous = 0.0
        self._handle: Optional[asyncio.TimerHandle] = None

    def start(self) -> None:
        self._schedule(asyncio.get_running_loop())

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self._last = self._previous = 0.0

    def behind_s(self) -> float:
        """Seconds the loop has been running late (0 when it keeps up)."""
        return self._last if self._last < self._previous else self._previous

    def _schedule(self, loop: asyncio.AbstractEventLoop) -> None:
        self._due = time.monotonic() + self._interval_s
        self._handle = loop.call_later(self._interval_s, self._tick, loop)

    def _tick(self, loop: asyncio.AbstractEventLoop) -> None:
        late = time.monotonic() - self._due
        self._previous, self._last = self._last, late if late > 0.0 else 0.0
        self._schedule(loop)
