"""The sample dialplan (docs/asterisk/extensions.conf) passes asterisklint and uses both routes right."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

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


def lint(path: Path) -> tuple[int, list[str], str]:
    """Runs ``asterisklint dialplan-check`` on ``path``: exit status, issue codes, raw output."""
    done = subprocess.run(
        [sys.executable, "-c", _LINT, "dialplan-check", str(path)],
        capture_output=True, text=True, timeout=60, cwd=str(path.parent),
    )
    output = done.stdout + done.stderr
    return done.returncode, _ISSUE.findall(output), output


#: an operator's extensions.conf that includes the sample, as its header says
WRAPPER = """\
[general]
static=yes
writeprotect=yes

[globals]
{globals}

#include "{sample}"
"""


def documented_globals() -> list[str]:
    """``NAME=value`` lines of the sample's header, the [globals] an operator sets (comments dropped)."""
    header = _dialplan().split("\n[", 1)[0]
    return [m.group(1) for m in re.finditer(r"^;\s{3,}([A-Z][A-Z0-9_]*=\S*)", header, re.M)]


def test_sample_dialplan_included_into_an_extensions_conf_has_no_error_or_warning(tmp_path: Path) -> None:
    """asterisklint finds no error, warning or hint in an extensions.conf that includes the sample."""
    wrapper = tmp_path / "extensions.conf"
    wrapper.write_text(WRAPPER.format(globals="\n".join(documented_globals()), sample=DIALPLAN), encoding="utf-8")
    status, issues, output = lint(wrapper)
    assert issues == [], output
    assert status == 0, output


def test_sample_dialplan_can_be_included() -> None:
    """No [general] or [globals] of its own: they would clash with those of the dialplan including it."""
    contexts = re.findall(r"^\[([^\]]+)\]", _dialplan(), re.M)
    assert "general" not in contexts and "globals" not in contexts


def test_every_global_the_sample_reads_is_documented_in_its_header() -> None:
    """Each global it reads (not set by itself) has a NAME=value line in the header to copy."""
    text = _dialplan()
    body = text.split("\n[", 1)[1]
    read = set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)[}:]", body))
    set_here = set(re.findall(r"Set\((?:__)?([A-Z][A-Z0-9_]*)=", body)) | set(re.findall(r"Set\(LOCAL\(([A-Z_]+)\)", body))
    channel = {"UNIQUEID", "EXTEN", "CHANNEL", "EPOCH", "AGISTATUS", "ARG1", "CALLERID", "CALLFLOW_STATUS",
               "CALLFLOW_ERROR", "PHONE_POLICY", "QUEUE_NAME", "CALL_ID", "CUSTOMER_ID", "CALL_STATUS",
               "PHONE_DIAL", "AGENT"}
    documented = {line.split("=", 1)[0] for line in documented_globals()}
    assert sorted(read - set_here - channel - documented) == []
    assert "CALLFLOW" in documented and "CALLFLOW_FAIL_POLICY" in documented


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
    event = _context("callflow-event")
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


def _context(name: str) -> str:
    return _dialplan().split(f"\n[{name}]", 1)[1].split("\n[", 1)[0]


def test_a_blacklisted_caller_is_never_answered_before_the_rejection() -> None:
    """From the ``blocked`` label to Hangup(21): no Answer, and any Playback is early media (noanswer)."""
    trunk = _context("from-trunk")
    blocked = trunk[trunk.index("(blocked)"):]
    blocked = blocked[:blocked.index("Hangup(21)")]
    assert "Answer(" not in blocked
    for playback in re.findall(r"Playback\(([^)]*)\)", blocked):
        assert "noanswer" in playback.split(",")[1:], playback


def test_checkphone_without_a_status_applies_the_fail_policy() -> None:
    """No CALLFLOW_STATUS after the AGI step (the instance died mid-session) is no answer: fail policy."""
    checkphone = _context("callflow-checkphone")
    assert '$["${CALLFLOW_STATUS}" = ""]?noanswer' in checkphone
    noanswer = checkphone[checkphone.index("n(noanswer)"):]
    assert 'Set(PHONE_POLICY=${IF($["${CALLFLOW_FAIL_POLICY}" = "blacklist"]?blacklist:normal)})' in noanswer
    assert checkphone.index("?noanswer") < checkphone.index('?failpolicy:done')  # before PHONE_POLICY is trusted


def test_an_event_without_a_status_is_not_taken() -> None:
    """No CALLFLOW_STATUS after the event AGI is no answer: logged as such and tried on the backup."""
    event = _context("callflow-event")
    assert 'ExecIf($["${CALLFLOW_STATUS}" = ""]?Set(CALLFLOW_ERROR=no answer))' in event
    assert event.index("no answer") < event.index("AGI(${CALLFLOW_BACKUP}/event)")


def test_a_hagi_alternative_is_shown() -> None:
    """Failover over several instances: the hagi:// line and its SRV name, commented out."""
    text = _dialplan()
    assert ";same => n,AGI(hagi://callflow.example/checkphone,${ARG1})" in text
    assert "_agi._tcp.callflow.example" in text
