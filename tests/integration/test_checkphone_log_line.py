"""The checkphone summary line says which number was checked: masked by default, in full on request
(ADR 0091), so "why was this caller blocked?" is answered from the log."""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.serve_support import start_serve
from tests.support.fake_asterisk import call

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("setting, shown", [(None, "0912***496"), ("full", "0912406496"), ("masked", "0912***496")])
async def test_the_summary_line_carries_the_number(tmp_path: Path, setting, shown: str) -> None:
    extra = {} if setting is None else {"log_numbers": setting}
    served = await start_serve(tmp_path, **extra)
    try:
        result = await call("127.0.0.1", served.agi_port, route="checkphone", args=["0912406496"],
                            callerid="0987654321")
    finally:
        await served.stop()
    assert result.variables.get("PHONE_POLICY")
    [summary] = [line for line in served.events("agi session") if line.get("route") == "checkphone"]
    assert summary["number"] == shown and summary["policy"] == result.variables["PHONE_POLICY"]
    assert "0912406496" not in str(served.log) or setting == "full"
