"""What the CLI integration tests share: a clean environment pointing the CLI at the test services."""
from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from tests.conftest import AMQP_URL, REDIS_URL


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """The CLI reads only what the test sets: test Redis db and broker, files under tmp_path, no .env."""
    for name in list(os.environ):
        if name.startswith("CALLFLOW_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("CALLFLOW_REDIS_URL", REDIS_URL)
    monkeypatch.setenv("CALLFLOW_AMQP_URL", AMQP_URL)
    monkeypatch.setenv("CALLFLOW_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("CALLFLOW_LOG_DIR", str(tmp_path / "log"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def unique_id(prefix: str) -> str:
    """An id no other test (or engineer's test run) uses: customers, queues."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"
