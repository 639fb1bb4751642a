"""Who may connect, and a log of refusals that a flood cannot turn into a log flood."""
from __future__ import annotations

import ipaddress
import time
from collections.abc import Sequence
from typing import Union

from callflow.entrypoints.agi.observe import log

IpNetwork = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]

_CACHE_SIZE = 1024


class SourceNetworks:
    """Answers "may this peer address connect?" from the configured networks (cached per host)."""

    def __init__(self, networks: Sequence[IpNetwork]) -> None:
        self._networks = tuple(networks)
        self._cache: dict[str, bool] = {}

    def allows(self, host: str) -> bool:
        allowed = self._cache.get(host)
        if allowed is None:
            allowed = self._check(host)
            if len(self._cache) >= _CACHE_SIZE:  # many distinct sources: start over, stay bounded
                self._cache.clear()
            self._cache[host] = allowed
        return allowed

    def _check(self, host: str) -> bool:
        try:
            address = ipaddress.ip_address(host.split("%", 1)[0])  # drop an IPv6 zone id
        except ValueError:
            return False
        mapped = getattr(address, "ipv4_mapped", None)  # ::ffff:10.1.2.3 on a dual-stack socket
        if mapped is not None:
            address = mapped
        return any(address in network for network in self._networks)


class RejectionLog:
    """Logs connections turned away (refused, or over the cap): at most one line per reason every ``interval_s``, with a count."""

    def __init__(self, interval_s: float = 10.0) -> None:
        self._interval_s = interval_s
        self._last: dict[str, tuple[float, int]] = {}

    def note(self, reason: str, host: str, in_flight: int) -> None:
        now = time.monotonic()
        last, suppressed = self._last.get(reason, (float("-inf"), 0))
        if now - last < self._interval_s:
            self._last[reason] = (last, suppressed + 1)
            return
        self._last[reason] = (now, 0)
        log.warning("agi connection turned away", reason=reason, source=host, in_flight=in_flight,
                    similar_since_last_line=suppressed)
