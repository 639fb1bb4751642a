"""Connections accepted whose ``agi_*`` header has not arrived yet: bounded apart from sessions (ADR 0080).

Asterisk sends its header as soon as it connects, so a connection that stays silent is a probe, a
scanner or a slowloris. Such connections never hold a session slot (``max_sessions`` counts only
sessions whose header is complete); here they are bounded in all and per peer address. Over either
bound, the OLDEST waiting connection (of that peer first) makes room for the new one when it has
waited at least ``displace_after_s``: a real call waits for its header a few milliseconds, so
whoever keeps sockets silent loses them first, and a flood of silent sockets never keeps a real
call out. When even the oldest is younger than that (a burst of real calls larger than the bound),
the new connection is the one turned away: a burst is never cut into by its own later calls.

Decisions: ADR 0016 (the accept batch), 0082 (descriptor budget).
"""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable, Mapping
from typing import Optional

#: connections accepted from a listening socket per loop turn, at most; each holds a
#: descriptor until it is admitted, so it is never more than the header-phase bound
ACCEPT_BATCH = 512
#: how long a connection must have waited for its header before a newer one may displace it
DISPLACE_AFTER_S = 0.1


class HeaderPhaseFull(Exception):
    """Every waiting connection is too recent to be displaced: turn the new one away."""


class HeaderPhase:
    """The connections waiting for their header, oldest first, in all and per peer."""

    def __init__(self, limit: int, per_peer_limit: int, displace_after_s: float = DISPLACE_AFTER_S) -> None:
        self.limit = max(1, limit)
        self.per_peer_limit = max(1, min(per_peer_limit, self.limit))
        self.displace_after_s = displace_after_s
        self._all: OrderedDict[Hashable, tuple[str, float]] = OrderedDict()
        self._by_peer: dict[str, OrderedDict[Hashable, None]] = {}

    def __len__(self) -> int:
        return len(self._all)

    def __contains__(self, connection: Hashable) -> bool:
        return connection in self._all

    def add(self, connection: Hashable, peer: str, now: float) -> list[Hashable]:
        """Count ``connection`` (accepted at ``now``) as waiting; returns the connections it
        displaces (to be closed). ``HeaderPhaseFull``: none may be displaced, close this one."""
        waiting = self._by_peer.get(peer)
        peer_full = waiting is not None and len(waiting) >= self.per_peer_limit
        first = self._displaceable(waiting, now) if peer_full else None
        if peer_full and first is None:
            raise HeaderPhaseFull(peer)
        second = None
        if len(self._all) - (first is not None) >= self.limit:
            second = self._displaceable(self._all, now, skip=first)
            if second is None:
                raise HeaderPhaseFull(peer)
        displaced = [self._pop(c) for c in (first, second) if c is not None]
        waiting = self._by_peer.get(peer)
        if waiting is None:
            waiting = self._by_peer[peer] = OrderedDict()
        self._all[connection] = (peer, now)
        waiting[connection] = None
        return displaced

    def _displaceable(self, waiting: Optional[Mapping[Hashable, object]], now: float,
                      skip: Optional[Hashable] = None) -> Optional[Hashable]:
        """The oldest of ``waiting`` (but ``skip``) when it has waited long enough, else None."""
        for connection in waiting or ():
            if connection is skip:
                continue
            since = self._all[connection][1]
            return connection if now - since >= self.displace_after_s else None
        return None

    def discard(self, connection: Hashable) -> None:
        """The header arrived, or the connection ended: no longer waiting."""
        if connection in self._all:
            self._pop(connection)

    def _pop(self, connection: Hashable) -> Hashable:
        peer, _ = self._all.pop(connection)
        waiting = self._by_peer[peer]
        del waiting[connection]
        if not waiting:
            del self._by_peer[peer]
        return connection
