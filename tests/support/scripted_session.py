"""A base for AgiSession doubles that a unit test scripts (no socket): a live channel with a fixed
time left; anything a test double does not override is a command the route should not send."""
from __future__ import annotations

from typing import Optional

from callflow.entrypoints.agi.session import AgiReply, AgiSession


class ScriptedSessionBase(AgiSession):
    """``remaining()`` is ``self._remaining``; the channel is alive; unexpected commands fail the test."""

    _remaining = 0.5

    @property
    def hung_up(self) -> bool:
        return False

    def remaining(self) -> float:
        return self._remaining

    async def command(self, line: str) -> AgiReply:
        raise AssertionError(f"unexpected raw command {line!r}")

    async def get_variable(self, name: str) -> Optional[str]:
        raise AssertionError(f"unexpected GET VARIABLE {name!r}")

    async def get_full_variable(self, expression: str) -> Optional[str]:
        raise AssertionError(f"unexpected GET FULL VARIABLE {expression!r}")

    async def set_variable(self, name: str, value: str) -> bool:
        raise AssertionError(f"unexpected SET VARIABLE {name!r}")
