"""Fixtures shared by every test layer.

Tests use Redis database ``CALLFLOW_TEST_REDIS_DB`` (default 15) so they never touch the data of a
server running on the same machine (db 0), and they never FLUSHALL.
"""
from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable

import pytest
import structlog

from callflow.config import Settings
from tests.support.redis_ha import redis_cluster, redis_sentinel  # noqa: F401 - session fixtures
from tests.support.redis_process import RedisProcess

TEST_REDIS_DB = int(os.environ.get("CALLFLOW_TEST_REDIS_DB", "15"))
REDIS_URL = os.environ.get("CALLFLOW_TEST_REDIS_URL", f"redis://127.0.0.1:6379/{TEST_REDIS_DB}")
AMQP_URL = os.environ.get("CALLFLOW_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")


@pytest.fixture(autouse=True)
def _structlog_defaults():
    """Each test starts from structlog's defaults, whatever an earlier test configured."""
    yield
    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()


@pytest.fixture
def redis_url() -> str:
    return REDIS_URL


@pytest.fixture
def amqp_url() -> str:
    return AMQP_URL


@pytest.fixture
def make_settings(tmp_path: Path) -> Callable[..., Settings]:
    """Build Settings for a test: no .env, files under tmp_path, test Redis db, ephemeral ports."""

    def _make(**overrides: Any) -> Settings:
        values: dict = dict(
            agi_host="127.0.0.1",
            agi_port=0,
            http_host="127.0.0.1",
            http_port=0,
            redis_url=REDIS_URL,
            amqp_url=AMQP_URL,
            data_dir=tmp_path / "data",
            log_dir=tmp_path / "log",
        )
        values.update(overrides)
        return Settings(_env_file=None, **values)

    return _make


@pytest.fixture
def redis_process() -> Iterator[RedisProcess]:
    """A Redis of the test's own (the shared one serves other test runs); always gone afterwards."""
    process = RedisProcess()
    process.start()
    try:
        yield process
    finally:
        process.kill()
