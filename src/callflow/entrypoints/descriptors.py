"""File descriptors for ``callflow serve``: the soft limit raised toward the hard one, the connection
bounds fitted to what it allows (ADR 0082).

Every AGI session, connection waiting for its header, HTTP connection and Redis connection is a
descriptor. Past the limit ``accept`` fails (EMFILE) and calls wait in the kernel's queue: dead air.
So at start the soft limit goes up to the hard one, and when even that cannot hold the configured
bounds, the bounds shrink to fit (said on one warning line): a call over a smaller session cap gets
its fallback at once, which is better than no answer.
"""
from __future__ import annotations

import os
from typing import Any, NamedTuple

from callflow.entrypoints.agi.header_phase import ACCEPT_BATCH

try:
    import resource
except ImportError:  # not a POSIX system: nothing to raise, nothing to fit
    resource = None  # type: ignore[assignment]

#: descriptors kept for what is not a connection bound: listening sockets, the event loop's own,
#: RabbitMQ, the outbox file (with its WAL, shared memory and lock), log files, standard streams
RESERVED = 64
#: Linux's default ceiling (fs.nr_open) when the hard limit is "unlimited"
_NR_OPEN_DEFAULT = 1 << 20


class DescriptorBudget(NamedTuple):
    limit: int  # the soft limit in effect after raising it
    needed: int  # what the configured bounds need
    bounds: dict[str, int]  # the bounds to use (the configured ones when they fit)

    @property
    def fits(self) -> bool:
        return self.limit >= self.needed


def raise_soft_limit() -> tuple[int, int]:
    """Soft limit up to the hard one (or fs.nr_open when unlimited); returns (soft, hard) in effect."""
    if resource is None:
        return -1, -1
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else _nr_open()
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            pass  # a container may forbid it: the budget below works with what there is
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def plan(settings: Any, limit: int, open_now: int) -> DescriptorBudget:
    """The bounds ``settings`` asks for, shrunk to fit ``limit`` descriptors when they do not."""
    bounds = {
        "max_sessions": settings.max_sessions,
        "max_header_connections": settings.max_header_connections,
        "max_header_connections_per_peer": settings.max_header_connections_per_peer,
        "http_max_connections": settings.http_max_connections,
    }
    reserved = RESERVED + settings.redis_max_connections + open_now
    # an accepted connection holds its descriptor until it is admitted: one accept batch more
    needed = (bounds["max_sessions"] + bounds["max_header_connections"] + bounds["http_max_connections"]
              + min(ACCEPT_BATCH, bounds["max_header_connections"]) + reserved)
    if limit < 0 or limit >= needed:
        return DescriptorBudget(limit, needed, bounds)
    available = max(limit - reserved, 16)
    header = min(bounds["max_header_connections"], max(available // 5, 4))
    http = min(bounds["http_max_connections"], max(available // 32, 2))
    fitted = {
        "max_sessions": min(bounds["max_sessions"], max(available - 2 * header - http, 1)),
        "max_header_connections": header,
        "max_header_connections_per_peer": min(bounds["max_header_connections_per_peer"], header),
        "http_max_connections": http,
    }
    return DescriptorBudget(limit, needed, fitted)


def fit_to_descriptors(settings: Any, log: Any) -> Any:
    """``settings`` with its connection bounds fitted to the descriptor limit (raised first)."""
    soft, hard = raise_soft_limit()
    budget = plan(settings, soft, _open_descriptors())
    if budget.fits:
        log.info("descriptor limit", limit=soft, needed=budget.needed)
        return settings
    log.warning("descriptor limit too low", limit=soft, hard_limit=hard, needed=budget.needed,
                action="connection bounds lowered to fit", fix="raise the limit: LimitNOFILE= (systemd), ulimit -n, --ulimit nofile=",
                **{name: f"{getattr(settings, name)} -> {value}" for name, value in budget.bounds.items()
                   if value != getattr(settings, name)})
    return settings.model_copy(update=budget.bounds)


def _open_descriptors() -> int:
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return 16


def _nr_open() -> int:
    try:
        with open("/proc/sys/fs/nr_open", encoding="ascii") as source:
            return int(source.read().strip())
    except (OSError, ValueError):
        return _NR_OPEN_DEFAULT

