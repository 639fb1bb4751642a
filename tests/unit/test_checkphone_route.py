"""The checkphone route over a scripted AGI session (no socket): input choice, variables, fallbacks."""
from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Optional

import pytest

from callflow.adapters.in_memory_phone_lists import InMemoryPhoneLists
from callflow.config import Settings
from callflow.containers import build_application
from callflow.domain.policy import PhonePolicy
from callflow.entrypoints.agi.checkphone import ANSWER_RESERVE_S, CheckPhoneRoute, build_checkphone_route
from callflow.service_layer.check_phone import CheckPhone
from tests.support.phone_lists import RecordingLists
from tests.support.scripted_session import ScriptedSessionBase

ORDER = ["PHONE_POLICY", "PHONE_BLACKLISTED", "PHONE_VIP", "CALLFLOW_STATUS"]


class ScriptedSession(ScriptedSessionBase):
    """A session that only accepts SET VARIABLE, recording each in order."""

    def __init__(self, args: Sequence[str] = (), callerid: Optional[str] = "0912406496",
                 remaining_s: float = 0.5) -> None:
        self.env = {"agi_uniqueid": "1752899481.313", "agi_network_script": "checkphone"}
        if callerid is not None:
            self.env["agi_callerid"] = callerid
        self.route, self.query, self.args, self.peer = "checkphone", {}, list(args), "127.0.0.1:1"
        self._remaining = remaining_s
        self.sets: list[tuple] = []

    async def set_variable(self, name: str, value: str) -> bool:
        self.sets.append((name, value))
        return True

    @property
    def variables(self) -> dict[str, str]:
        return dict(self.sets)


def make_route(lists: InMemoryPhoneLists, fail_closed: bool = False) -> CheckPhoneRoute:
    policy = PhonePolicy("normal", fail_closed)
    return CheckPhoneRoute(CheckPhone(lists, policy, "VN", timeout_s=0.3), policy, deadline_s=0.5)


async def test_a_blacklisted_caller_gets_the_four_variables_in_order() -> None:
    """Four SET VARIABLE, policy first, status last: blacklist, 1, 0, OK."""
    lists = RecordingLists()
    await lists.blacklist_add(["84912406496"], 86400)
    session = ScriptedSession()
    await make_route(lists).handle(session)
    assert session.sets == [("PHONE_POLICY", "blacklist"), ("PHONE_BLACKLISTED", "1"), ("PHONE_VIP", "0"),
                            ("CALLFLOW_STATUS", "OK")]


async def test_agi_arg_1_is_checked_rather_than_the_caller_id() -> None:
    """AGI(agi://.../checkphone,NUMBER): NUMBER is looked up, not agi_callerid."""
    lists = RecordingLists()
    await lists.vip_add(["84987654321"])
    session = ScriptedSession(args=["0987654321"], callerid="0912406496")
    await make_route(lists).handle(session)
    assert session.variables["PHONE_POLICY"] == "vip"
    assert lists.lookups[0][0][0] == "84987654321"


@pytest.mark.parametrize("args", [[], [""], ["   "]])
async def test_a_missing_or_blank_argument_falls_back_to_the_caller_id(args: list[str]) -> None:
    """No agi_arg_1, or a blank one (an empty ${CALLERID(num)}): agi_callerid is checked."""
    lists = RecordingLists()
    await lists.blacklist_add(["0912406496"], 86400)
    session = ScriptedSession(args=args, callerid="+84912406496")
    await make_route(lists).handle(session)
    assert session.variables["PHONE_POLICY"] == "blacklist"


@pytest.mark.parametrize("callerid", [None, "", "unknown", "Anonymous"])
async def test_an_anonymous_caller_is_normal_and_not_looked_up(callerid: Optional[str]) -> None:
    """No caller id at all, empty, unknown, anonymous: normal, OK, no lookup."""
    lists = RecordingLists()
    session = ScriptedSession(callerid=callerid)
    await make_route(lists).handle(session)
    assert session.variables == {"PHONE_POLICY": "normal", "PHONE_BLACKLISTED": "0", "PHONE_VIP": "0",
                                 "CALLFLOW_STATUS": "OK"}
    assert lists.lookups == []


async def test_bad_input_answers_error() -> None:
    """agi_arg_1 that is not a number: CALLFLOW_STATUS=ERROR, policy normal."""
    session = ScriptedSession(args=["not-a-number"])
    await make_route(RecordingLists()).handle(session)
    assert session.variables["CALLFLOW_STATUS"] == "ERROR"
    assert session.variables["PHONE_POLICY"] == "normal"


async def test_the_lookup_keeps_time_back_for_the_answer() -> None:
    """With 0.25 s left, the lookup gets 0.25 s minus the answer reserve (not the 0.3 s store timeout)."""
    lists = RecordingLists()
    await make_route(lists).handle(ScriptedSession(remaining_s=0.25))
    assert lists.lookups[0][1] == pytest.approx(0.25 - ANSWER_RESERVE_S)


async def test_an_unreachable_store_answers_degraded() -> None:
    """Lists unavailable: normal, DEGRADED, all four variables set."""
    lists = RecordingLists()
    lists.available = False
    session = ScriptedSession()
    await make_route(lists).handle(session)
    assert session.sets == [("PHONE_POLICY", "normal"), ("PHONE_BLACKLISTED", "0"), ("PHONE_VIP", "0"),
                            ("CALLFLOW_STATUS", "DEGRADED")]


@pytest.mark.parametrize("reason,status", [("deadline", "DEGRADED"), ("overloaded", "DEGRADED"), ("error", "ERROR")])
@pytest.mark.parametrize("fail_closed,policy,flag", [(False, "normal", "0"), (True, "blacklist", "1")])
async def test_fallback_sets_the_safe_defaults(reason: str, status: str, fail_closed: bool, policy: str,
                                               flag: str) -> None:
    """Fallback, whatever the reason: the four variables, fail-open or fail-closed, DEGRADED or ERROR."""
    lists = RecordingLists()
    session = ScriptedSession()
    await make_route(lists, fail_closed).fallback(session, reason)
    assert [name for name, _ in session.sets] == ORDER
    assert session.variables == {"PHONE_POLICY": policy, "PHONE_BLACKLISTED": flag, "PHONE_VIP": "0",
                                 "CALLFLOW_STATUS": status}
    assert lists.lookups == []


async def test_the_builder_wires_the_route_from_the_container() -> None:
    """build_checkphone_route: name checkphone, deadline from checkphone_deadline_ms, settings' policy."""
    settings = Settings(_env_file=None, checkphone_deadline_ms=750, fail_closed=True)
    route = await build_checkphone_route(build_application(settings, in_memory=True))
    assert (route.name, route.deadline_s) == ("checkphone", 0.75)
    session = ScriptedSession()
    await route.fallback(session, "deadline")
    assert session.variables["PHONE_POLICY"] == "blacklist"


class StallingSession(ScriptedSession):
    """A session whose Asterisk stops acknowledging after ``answered`` SET VARIABLE commands."""

    def __init__(self, answered: int) -> None:
        super().__init__()
        self._answered = answered

    async def set_variable(self, name: str, value: str) -> bool:
        await super().set_variable(name, value)
        if len(self.sets) > self._answered:
            await asyncio.sleep(3600)
        return True


async def test_a_decided_answer_survives_a_cut_while_it_is_being_written() -> None:
    """Deadline while the blacklist answer is half written: the fallback re-sends it, not the defaults."""
    lists = RecordingLists()
    await lists.blacklist_add(["84912406496"], 86400)
    route = make_route(lists)
    session = StallingSession(answered=1)
    handling = asyncio.ensure_future(route.handle(session))
    await asyncio.sleep(0.01)
    handling.cancel()
    session._answered = 99
    await route.fallback(session, "deadline")
    assert session.sets[-4:] == [("PHONE_POLICY", "blacklist"), ("PHONE_BLACKLISTED", "1"), ("PHONE_VIP", "0"),
                                 ("CALLFLOW_STATUS", "OK")]


@pytest.mark.parametrize("region,expected", [("VN", "VN"), (" vn ", "VN"), ("us", "US")])
def test_the_default_region_is_a_known_country(region: str, expected: str) -> None:
    """CALLFLOW_DEFAULT_REGION is read in upper case."""
    assert Settings(_env_file=None, default_region=region).default_region == expected


@pytest.mark.parametrize("region", ["XX", "", "Vietnam"])
def test_an_unknown_default_region_stops_the_start(region: str) -> None:
    """A region phonenumbers does not know would make every national number bad input: refused."""
    with pytest.raises(ValueError, match="unknown region"):
        Settings(_env_file=None, default_region=region)
