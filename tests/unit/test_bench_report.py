"""The benchmark's figures: medians of runs, target verdicts, profile cost centres (bench/report.py, profile.py)."""
from __future__ import annotations

from pathlib import Path

from bench.profile import parse_stacks, summarize
from bench.report import aggregate, table, verdicts


def run(cpu: float, failed: int = 0, p50: float = 1.0) -> dict:
    return {"calls": 100, "failed": failed, "server_cpu_ms_per_call": cpu, "p50_ms": p50, "p99_ms": 2 * p50,
            "calls_per_s": 1000.0, "server_peak_rss_mb": 50.0, "loadgen_cpu_util": 0.5,
            "errors": {"x": failed} if failed else {}, "statuses": {"OK": 100 - failed}}


def test_medians_resist_one_disturbed_run_and_failures_add_up() -> None:
    """One run slowed by a busy machine does not move the median; failed calls of all runs count."""
    figures = aggregate([run(0.10), run(0.90, failed=2), run(0.12)])
    assert figures["server_cpu_ms_per_call"] == 0.12
    assert figures["failed"] == 2 and figures["calls"] == 300 and figures["errors"] == {"x": 2}


def test_verdicts_name_the_targets_met_and_missed() -> None:
    """checkphone at 100 in flight is held to 0.10 ms of CPU per call; the table shows the floor ratio."""
    blocks = [{"route": "checkphone", "concurrency": 100, "reply_delay_us": 0,
               "floor": aggregate([run(0.05)]), "callflow": aggregate([run(0.25)])}]
    assert verdicts(blocks) == ["- checkphone at 100: server CPU ms per call = 0.250 (target ≤ 0.1): NOT met"]
    assert "| 5.0 |" in table(blocks)


def test_profile_counts_each_sample_once_in_its_cost_centre(tmp_path: Path) -> None:
    """A stack through structlog counts as logging even under the Redis client; waiting is left out."""
    raw = tmp_path / "stacks.txt"
    raw.write_text("main;Runner.run (asyncio/runners.py:1);x (redis/client.py:2);log (structlog/_base.py:3) 3\n"
                   "main;Runner.run (asyncio/runners.py:1);write (libc.so.6) 1\n"
                   "main;run_forever (loop.c:1);epoll_pwait (libc.so.6) 4\n")
    text = summarize(parse_stacks(raw), top=5)
    assert "4 idle samples left out" in text
    assert "75.0%  logging (structlog, logging, json)" in text
    assert "25.0%  event loop internals" in text
