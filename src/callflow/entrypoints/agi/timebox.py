"""A deadline for the code inside a ``with`` block of the current task, without a new task.

``asyncio.wait_for`` wraps its awaitable in a task before Python 3.12 (a task per session on the
hot path) and ``asyncio.timeout`` only exists from 3.11; this does what the latter does on 3.9+:
a timer cancels the current task, and the cancellation is turned into ``TimeBoxExpired``.
"""
from __future__ import annotations

import asyncio
from types import TracebackType
from typing import Literal, Optional


class TimeBoxExpired(Exception):
    """The time given to a ``timebox`` ran out; the awaited operation was cancelled."""


class timebox:  # noqa: N801 - used like asyncio.timeout
    """``with timebox(seconds): await ...`` raises ``TimeBoxExpired`` once ``seconds`` have passed."""

    __slots__ = ("_seconds", "_loop", "_task", "_handle", "expired")

    def __init__(self, seconds: float, loop: Optional[asyncio.AbstractEventLoop] = None) -> None:
        """``loop``: the running loop when the caller has it at hand (on Python < 3.12 asking asyncio
        for the running loop makes a system call, ``getpid()``)."""
        self._seconds = seconds
        self._loop = loop
        self._task: Optional[asyncio.Task[object]] = None
        self._handle: Optional[asyncio.TimerHandle] = None
        self.expired = False

    def __enter__(self) -> timebox:
        task = self._task = asyncio.current_task(self._loop)
        if task is None:
            raise RuntimeError("timebox must be used inside a task")
        self._handle = task.get_loop().call_later(self._seconds, self._expire)
        return self

    def _expire(self) -> None:
        self.expired = True
        assert self._task is not None
        self._task.cancel()

    def expire_now(self) -> None:
        """End the box now, as if its time had run out (a no-op once it has ended or expired)."""
        if self._handle is not None and not self._handle.cancelled() and not self.expired:
            self._handle.cancel()
            self._expire()

    def __exit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> Literal[False]:
        assert self._handle is not None and self._task is not None
        self._handle.cancel()
        if not self.expired:
            return False
        uncancel = getattr(self._task, "uncancel", None)  # 3.11+: keep the cancel count right
        if uncancel is not None and uncancel() > 0:
            return False  # someone else cancelled the task too: let that cancellation through
        if exc_type is asyncio.CancelledError:
            raise TimeBoxExpired(f"no answer within {self._seconds:.3f} s") from None
        return False
