"""Whether an event was taken into durable custody: what a route cut short needs to answer right."""
from __future__ import annotations

import asyncio
from typing import Optional


class Custody:
    """The outcome of storing one event, known even to a caller cancelled while it was stored.

    The delivery hands over the (shielded) storing as soon as it starts; ``held`` is True once the
    event is stored. ``settled()`` waits for the outcome of a storing still under way (the put goes
    on when its caller is cancelled, so an answer given before it ends could be wrong), bounded by
    the time the caller still has.
    """

    __slots__ = ("_storing",)

    def __init__(self) -> None:
        self._storing: "Optional[asyncio.Future[object]]" = None

    def storing(self, stored: "asyncio.Future[object]") -> None:
        """The delivery started storing: ``stored`` succeeds once the event is durable, else fails."""
        self._storing = stored

    @property
    def held(self) -> bool:
        stored = self._storing
        return stored is not None and stored.done() and not stored.cancelled() and stored.exception() is None

    async def settled(self, within_s: float) -> bool:
        """True once the event is stored; False when it was refused, never handed over, or its
        storing did not end within ``within_s`` (the storing itself goes on)."""
        stored = self._storing
        if stored is None:
            return False
        if not stored.done():
            await asyncio.wait((stored,), timeout=max(0.0, within_s))
        return self.held
