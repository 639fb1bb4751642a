"""A busy event loop on demand, for tests of overload handling."""
from __future__ import annotations

import asyncio
import time


class Hog:
    """Blocks the event loop ``seconds`` on every turn (more work than the loop can do), with
    ``gap_s`` between turns, until ``running`` is set False."""

    def __init__(self, seconds: float, gap_s: float = 0.002) -> None:
        self.seconds = seconds
        self.gap_s = gap_s
        self.running = True
        asyncio.get_running_loop().call_soon(self._turn)

    def _turn(self) -> None:
        if self.running:
            time.sleep(self.seconds)
            asyncio.get_running_loop().call_later(self.gap_s, self._turn)
