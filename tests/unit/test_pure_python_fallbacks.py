"""Without uvloop and hiredis (Windows, PyPy, a platform without wheels) callflow runs the same way:
asyncio's own loop, redis-py's own command packing (ADR 0071)."""
from __future__ import annotations

import asyncio
import sys

import pytest

from callflow.adapters import redis_batch
from callflow.entrypoints.commands.serve import run_loop

COMMANDS = [("EVALSHA", "abc", 2, "phone:blacklist:84912406496", "phone:vip", "84912406496"),
            ("SADD", "stats:calls:kỹ:ringing", "1.2"), ("GET", b"raw\xff")]


def test_serve_runs_on_asyncios_loop_without_uvloop(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # import uvloop -> ImportError
    seen = []

    async def main() -> int:
        seen.append(type(asyncio.get_running_loop()).__module__)
        return 7

    assert run_loop(main()) == 7
    assert seen and not seen[0].startswith("uvloop")


def test_serve_runs_on_uvloop_when_installed() -> None:
    pytest.importorskip("uvloop")
    seen = []

    async def main() -> int:
        seen.append(type(asyncio.get_running_loop()).__module__)
        return 0

    assert run_loop(main()) == 0
    assert seen[0].startswith("uvloop")


class _Lane:
    """What ``_packed`` needs of a redis-py connection without hiredis: its own packer."""

    def __init__(self) -> None:
        from redis.connection import PythonRespSerializer
        self._serializer = PythonRespSerializer(6000, lambda value: value if isinstance(value, bytes)
                                                else str(value).encode("utf-8"))

    def pack_commands(self, commands):
        return b"".join(b"".join(self._serializer.pack(*command)) for command in commands)


def test_commands_are_packed_alike_without_hiredis(monkeypatch) -> None:
    with_hiredis = redis_batch._packed(_Lane(), COMMANDS) if redis_batch._pack_with_hiredis else None
    monkeypatch.setattr(redis_batch, "_pack_with_hiredis", None)
    without = redis_batch._packed(_Lane(), COMMANDS)
    assert without.startswith(b"*6\r\n$7\r\nEVALSHA\r\n")
    if with_hiredis is not None:
        assert with_hiredis == without
