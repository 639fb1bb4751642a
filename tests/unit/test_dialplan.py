"""The sample dialplan (docs/asterisk/extensions.conf) passes asterisklint and uses both routes right."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import List, Tuple

import pytest

pytest.importorskip("asterisklint", reason="asterisklint is in the 'test' extra: pip install -e '.[test]'")

DIALPLAN = Path(__file__).resolve().parents[2] / "docs" / "asterisk" / "extensions.conf"

# The original brief's sample: priority 1 given twice to the same extension, so the event AGI never runs.
SEED_SAMPLE = """\
[default]
; Check blacklist/VIP
exten => _X.,1,AGI(agi://localhost:4573/checkphone)
exten => _X.,n,Dial(SIP/${EXTEN})

; Send event
exten => _X.,1,AGI(agi://localhost:4573/event)
exten => _X.,n,Hangup()
"""

_ISSUE = re.compile(r"^\S+:\d+ ([EWH]_[A-Z_]+):", re.MULTILINE)
_LINT = "import os, sys; from asterisklint.main import main; sys.exit(main(sys.argv[1:], os.environ))"


def lint(path: Path) -> Tuple[int, List[str], str]:
    """Runs ``asterisklint dialplan-check`` on ``path``: exit status, issue codes, raw output."""
    done = subprocess.run(
        [sys.executable, "-c", _LINT, "dialplan-check", str(path)],
        capture_output=True, text=True, timeout=60, cwd=str(path.parent),
    )
    output = done.stdout + done.stderr
    return done.returncode, _ISSUE.findall(output), output


def test_sample_dialplan_has_no_error_or_warning() -> None:
    """asterisklint finds no error and no warning in the sample dialplan."""
    status, issues, output = lint(DIALPLAN)
    assert [code for code in issues if code[0] in "EW"] == [], output
    assert status == 0, output


def test_asterisklint_catches_the_seed_samples_duplicate_priority(tmp_path: Path) -> None:
    """The same check fails on the original sample, which gives priority 1 twice (E_DP_PRIO_DUPE)."""
    broken = tmp_path / "extensions.conf"
    broken.write_text(SEED_SAMPLE, encoding="utf-8")
    status, issues, output = lint(broken)
    assert "E_DP_PRIO_DUPE" in issues, output
    assert status != 0


def _dialplan() -> str:
    return DIALPLAN.read_text(encoding="utf-8")


def test_dialplan_calls_both_routes_and_branches_on_the_policy() -> None:
    """checkphone and event are both called, and the call branches on PHONE_POLICY and AGISTATUS."""
    text = _dialplan()
    assert re.search(r"AGI\(\$\{CALLFLOW\}/checkphone,", text)
    assert re.search(r"AGI\(\$\{CALLFLOW\}/event\)", text)
    for policy in ("blacklist", "vip"):
        assert f'$["${{PHONE_POLICY}}" = "{policy}"]' in text
    assert '$["${AGISTATUS}" = "FAILURE"]' in text
    assert '$["${CALLFLOW_STATUS}" = "OK"]' in text


def test_event_failures_are_retried_unless_the_values_are_invalid() -> None:
    """An event not taken (unreachable, timeout...) goes to CALLFLOW_BACKUP; invalid values are only logged."""
    event = _dialplan().split("[callflow-event]", 1)[1].split("\n[", 1)[0]
    assert "Set(CALLFLOW_STATUS=)" in event and "Set(CALLFLOW_ERROR=)" in event
    assert '$["${CALLFLOW_ERROR:0:8}" = "invalid:"]?refused' in event
    assert "AGI(${CALLFLOW_BACKUP}/event)" in event
    assert event.index("Set(CALLFLOW_STATUS=)") < event.index("AGI(${CALLFLOW}/event)")


@pytest.mark.parametrize(
    "name", ["CALL_ID", "DIRECTION", "CUSTOMER_ID", "TRUNK", "UNIQUE_ID", "PHONE_DIAL", "LINKED_ID",
             "QUEUE_NAME", "DIAL_MODE"],
)
def test_every_call_variable_the_event_route_reads_is_set(name: str) -> None:
    """Each plain variable the event route reads is set, inherited ("__") by the agents' channels."""
    assert f"Set(__{name}=" in _dialplan()


@pytest.mark.parametrize("name", ["ANSWER_TIME", "AGENT_EXTEN", "AGENT_ACCOUNT"])
def test_shared_variables_are_set_on_the_callers_channel(name: str) -> None:
    """ANSWER_TIME, AGENT_EXTEN and AGENT_ACCOUNT are set as SHARED(NAME,${CALL_ID})."""
    assert f"Set(SHARED({name},${{CALL_ID}})=" in _dialplan()


@pytest.mark.parametrize("status", ["ringing", "answered", "hangup"])
def test_an_event_is_sent_at_each_stage_of_the_call(status: str) -> None:
    """ringing, answered and hangup each send an event through the callflow-event subroutine."""
    assert f"Gosub(callflow-event,s,1({status}))" in _dialplan()
