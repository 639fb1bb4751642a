"""The descriptor budget of ``callflow serve`` (ADR 0082)."""
from __future__ import annotations

import resource

from callflow.config import Settings
from callflow.entrypoints.descriptors import RESERVED, plan, raise_soft_limit


def settings(**values: object) -> Settings:
    return Settings(_env_file=None, **values)


def test_the_defaults_fit_a_generous_limit_unchanged() -> None:
    budget = plan(settings(), limit=65536, open_now=10)
    assert budget.fits and budget.bounds["max_sessions"] == 3000 and budget.bounds["http_max_connections"] == 64


def test_under_systemds_1024_every_bound_shrinks_to_fit_the_limit() -> None:
    """1,024: the configured bounds need about 7,500; the fitted ones, with an accept batch and the
    reserve, fit within the limit, and each is still usable."""
    configured = settings()
    budget = plan(configured, limit=1024, open_now=10)
    bounds = budget.bounds
    assert not budget.fits and budget.needed > 7000
    used = (bounds["max_sessions"] + 2 * bounds["max_header_connections"] + bounds["http_max_connections"]
            + RESERVED + configured.redis_max_connections + 10)
    assert used <= 1024
    assert bounds["max_sessions"] >= 300 and bounds["max_header_connections"] >= 100
    assert bounds["max_header_connections_per_peer"] <= bounds["max_header_connections"]
    assert bounds["http_max_connections"] >= 2


def test_the_soft_limit_is_raised_to_the_hard_one() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(1024, hard), hard))
        assert raise_soft_limit() == (hard, hard) or hard == resource.RLIM_INFINITY
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
