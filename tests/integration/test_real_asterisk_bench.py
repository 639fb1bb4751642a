"""`scripts/bench asterisk` end to end, briefly: both servers answer every call right on the real Asterisk."""
from __future__ import annotations

import json

import pytest

from bench import pbx_run
from tests.support.real_asterisk import asterisk_installed  # noqa: F401 - fixture

pytestmark = [pytest.mark.integration, pytest.mark.asterisk]


def test_the_real_asterisk_benchmark_runs_both_routes_without_failures(asterisk_installed, tmp_path, capsys) -> None:
    out = tmp_path / "result.json"
    assert pbx_run.main(["--calls", "40", "--runs", "1", "--warmup", "0", "--concurrency", "5",
                         "--out", str(out)]) == 0
    blocks = json.loads(out.read_text())["blocks"]
    assert [b["route"] for b in blocks] == ["checkphone", "event"]
    for block in blocks:
        for name in ("floor", "callflow"):
            assert block[name]["calls"] == 40 and block[name]["failed"] == 0, (block["route"], name, block[name])
            assert block[name]["p50_ms"] > 0 and block[name]["asterisk_cpu_ms_per_call"] >= 0
    assert "| checkphone | callflow |" in capsys.readouterr().out
