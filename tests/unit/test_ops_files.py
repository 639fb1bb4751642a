"""What operators plug in (docs/ops/): the alert rules fire when they should (promtool), the rules and
the dashboard use only metrics /metrics exports, and the systemd unit passes systemd's own checks."""
from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from callflow.entrypoints.http import OpsHttpServer

yaml = pytest.importorskip("yaml", reason="PyYAML is in the 'test' extra: pip install -e '.[test]'")

ROOT = Path(__file__).resolve().parents[2]
OPS = ROOT / "docs" / "ops"
RULES = OPS / "callflow-alerts.yaml"
RULE_TESTS = ROOT / "tests" / "data" / "ops" / "callflow-alerts.test.yaml"
DASHBOARD = OPS / "callflow-dashboard.json"
UNIT = OPS / "callflow.service"
# Series Prometheus makes itself, not callflow: the scrape's own `up`, and the blackbox exporter's
# probe of /readyz (readiness is an HTTP answer, not a metric).
NOT_FROM_CALLFLOW = {"up", "probe_success"}


def on_ci() -> bool:
    return bool(os.environ.get("CI"))


def tool_missing(why: str) -> None:
    """On CI a missing tool fails the test; elsewhere it skips it with the reason."""
    if on_ci():
        pytest.fail(f"{why} (CI must have it)")
    pytest.skip(why)


def rules() -> list[dict]:
    return [rule for group in yaml.safe_load(RULES.read_text("utf-8"))["groups"] for rule in group["rules"]]


def dashboard_queries() -> Iterator[str]:
    document = json.loads(DASHBOARD.read_text("utf-8"))
    for panel in document["panels"]:
        for target in panel["targets"]:
            yield target["expr"]
    for variable in document["templating"]["list"]:
        if variable["type"] == "query":
            yield variable["definition"]


def metric_names(expr: str) -> set[str]:
    """Series names in a PromQL expression: every callflow_* word, and any name a selector follows."""
    without_strings = re.sub(r'"[^"]*"', '""', expr)
    return set(re.findall(r"\bcallflow_[a-z0-9_]+\b", without_strings)) | set(
        re.findall(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{", without_strings))


async def exported_series() -> set[str]:
    """Every series name callflow's /metrics can carry, from its # TYPE lines (labelled metrics
    declare their family there before their first sample)."""
    server = OpsHttpServer("127.0.0.1", 0)
    await server.start()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"GET /metrics HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
        await writer.drain()
        response = (await asyncio.wait_for(reader.read(), 10)).decode("utf-8")
        writer.close()
    finally:
        await server.stop()
    assert response.startswith("HTTP/1.1 200"), response[:200]
    names: set[str] = set()
    for name, kind in re.findall(r"^# TYPE (\S+) (\S+)$", response, re.MULTILINE):
        if kind == "histogram":
            names |= {f"{name}_bucket", f"{name}_count", f"{name}_sum"}
        else:
            names.add(name)
    return names


# --- alert rules -----------------------------------------------------------------------------------


def test_every_alert_says_what_it_is_and_what_to_do() -> None:
    """Each rule: an alert name, a severity (page or ticket), a summary, a description and a runbook line."""
    found = rules()
    assert len(found) >= 9
    for rule in found:
        assert rule["alert"].startswith("Callflow"), rule
        assert rule["labels"]["severity"] in ("page", "ticket"), rule["alert"]
        for key in ("summary", "description", "runbook"):
            assert rule["annotations"].get(key, "").strip(), f"{rule['alert']}: no {key}"


def test_every_alert_is_exercised_by_the_promtool_tests() -> None:
    """The promtool test file expects each alert to fire at least once."""
    tested = {case["alertname"] for test in yaml.safe_load(RULE_TESTS.read_text("utf-8"))["tests"]
              for case in test["alert_rule_test"] if case["exp_alerts"]}
    assert tested == {rule["alert"] for rule in rules()}


def promtool(*args: str) -> subprocess.CompletedProcess:
    done = subprocess.run([str(ROOT / "scripts" / "promtool"), *args], capture_output=True, text=True,
                          timeout=300)
    if done.returncode == 3:
        tool_missing(f"promtool: {done.stderr.strip()}")
    return done


def test_alert_rules_pass_promtool_check_and_their_unit_tests() -> None:
    """promtool checks the rules, then runs tests/data/ops/callflow-alerts.test.yaml: each alert fires
    on its synthetic series with the expected labels and text, and not on the healthy ones."""
    checked = promtool("check", "rules", str(RULES))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = promtool("test", "rules", str(RULE_TESTS))
    assert tested.returncode == 0 and "SUCCESS" in tested.stdout, tested.stdout + tested.stderr


def test_promtool_tests_fail_when_an_alert_does_not_fire(tmp_path: Path) -> None:
    """The same tests against rules whose outbox threshold is out of reach: promtool reports the miss."""
    broken = tmp_path / "rules.yaml"
    broken.write_text(RULES.read_text("utf-8").replace("callflow_outbox_depth > 1000", "callflow_outbox_depth > 1e9"))
    document = yaml.safe_load(RULE_TESTS.read_text("utf-8"))
    document["rule_files"] = [str(broken)]
    tests = tmp_path / "tests.yaml"
    tests.write_text(yaml.safe_dump(document))
    done = promtool("test", "rules", str(tests))
    assert done.returncode != 0 and "CallflowOutboxGrowing" in done.stdout + done.stderr


# --- metric names ----------------------------------------------------------------------------------


def test_the_name_extraction_sees_selectors_and_bare_names() -> None:
    assert metric_names('rate(callflow_x_total{a="callflow_in_a_string"}[5m]) and up{job="y"} > callflow_z') == {
        "callflow_x_total", "up", "callflow_z"}


async def test_rules_and_dashboard_use_only_metrics_callflow_exports() -> None:
    """Every series named by an alert or a dashboard query is on /metrics (or made by Prometheus)."""
    exported = await exported_series()
    assert {"callflow_outbox_depth", "callflow_agi_outcomes_total", "callflow_agi_session_seconds_bucket"} <= exported
    used: dict[str, set[str]] = {}
    for rule in rules():
        for name in metric_names(rule["expr"]):
            used.setdefault(name, set()).add(f"alert {rule['alert']}")
    for expr in dashboard_queries():
        for name in metric_names(expr):
            used.setdefault(name, set()).add("dashboard")
    unknown = {name: sorted(where) for name, where in used.items() if name not in exported | NOT_FROM_CALLFLOW}
    assert not unknown, f"not exported by callflow: {unknown}"
    assert {"callflow_outbox_depth", "callflow_agi_outcomes_total"} <= set(used)


# --- dashboard -------------------------------------------------------------------------------------


def test_dashboard_panels_query_the_chosen_prometheus_and_instances() -> None:
    """Unique panel ids, a 24-column grid, every query on ${datasource} and filtered by $instance."""
    document = json.loads(DASHBOARD.read_text("utf-8"))
    panels = document["panels"]
    assert len({panel["id"] for panel in panels}) == len(panels) >= 8
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        assert panel["datasource"]["uid"] == "${datasource}" and panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert 'instance=~"$instance"' in target["expr"], (panel["title"], target["expr"])
    assert {v["name"] for v in document["templating"]["list"]} == {"datasource", "instance"}


# --- systemd unit ----------------------------------------------------------------------------------


def unit_for_this_checkout(tmp_path: Path) -> Path:
    """The unit with ExecStart on this checkout's callflow: systemd-analyze verify checks that the
    program exists, and /opt/callflow is where an operator installs it, not where the tests run."""
    program = Path(sys.executable).parent / "callflow"
    if not program.exists():
        pytest.skip(f"{program} is missing (scripts/bootstrap installs it)")
    text = UNIT.read_text("utf-8")
    assert "ExecStart=/opt/callflow/venv/bin/callflow serve" in text
    unit = tmp_path / "callflow.service"
    unit.write_text(text.replace("/opt/callflow/venv/bin/callflow", str(program)))
    return unit


def systemd_analyze(*args: str) -> subprocess.CompletedProcess:
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed (Debian package systemd)")
    return subprocess.run(["systemd-analyze", *args], capture_output=True, text=True, timeout=120)


def test_systemd_unit_verifies_without_a_warning(tmp_path: Path) -> None:
    """systemd-analyze verify: no unknown key, bad value or missing program (it exits 0 on mere
    warnings, so its output must be empty too)."""
    done = systemd_analyze("verify", str(unit_for_this_checkout(tmp_path)))
    assert done.returncode == 0 and not (done.stdout + done.stderr).strip(), done.stdout + done.stderr


def test_systemd_verify_reports_a_broken_unit(tmp_path: Path) -> None:
    """The check can fail: a misspelt hardening key is reported."""
    unit = unit_for_this_checkout(tmp_path)
    unit.write_text(unit.read_text("utf-8").replace("ProtectSystem=strict", "ProtectSystm=strict"))
    done = systemd_analyze("verify", str(unit))
    assert "ProtectSystm" in done.stdout + done.stderr


def test_systemd_unit_is_hardened(tmp_path: Path) -> None:
    """systemd's own exposure score (0 safest, 10 unrestricted) stays at OK (below 2), and the unit
    stops with SIGTERM and gives the drain time before SIGKILL."""
    text = UNIT.read_text("utf-8")
    assert "KillSignal=SIGTERM" in text and "User=callflow" in text and "StateDirectory=callflow" in text
    stop = int(re.search(r"^TimeoutStopSec=(\d+)$", text, re.MULTILINE).group(1))  # type: ignore[union-attr]
    assert stop > 10 + 5  # CALLFLOW_DRAIN_TIMEOUT_S + CALLFLOW_OUTBOX_FLUSH_TIMEOUT_S defaults
    done = systemd_analyze("security", "--offline=true", str(unit_for_this_checkout(tmp_path)))
    if done.returncode != 0 and "offline" in done.stderr:
        pytest.skip(f"this systemd-analyze has no offline security check: {done.stderr.strip()}")
    found = re.search(r"Overall exposure level for \S+: ([0-9.]+)", done.stdout)
    assert found, done.stdout + done.stderr
    assert float(found.group(1)) < 2.0, done.stdout
