"""CheckPhone on the in-memory phone lists: lookups by every form, anonymous, bad input, degraded."""
from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callflow.adapters.in_memory_phone_lists import InMemoryPhoneLists
from callflow.domain.policy import PhonePolicy
from callflow.service_layer.check_phone import CheckPhone
from tests.support.phone_lists import RecordingLists

FORMS = ["0912406496", "84912406496", "+84912406496", "0084912406496"]


def check(lists: InMemoryPhoneLists, anonymous_policy: str = "normal", fail_closed: bool = False) -> CheckPhone:
    return CheckPhone(lists, PhonePolicy(anonymous_policy, fail_closed), region="VN", timeout_s=0.3)


@pytest.mark.parametrize("stored", FORMS)
@pytest.mark.parametrize("called", FORMS)
async def test_a_blacklist_entry_in_any_form_blocks_every_form(stored: str, called: str) -> None:
    """Whichever form was blacklisted (by another tool), a call in any form is blacklisted, OK."""
    lists = RecordingLists()
    await lists.blacklist_add([stored], 86400)
    result = await check(lists).execute(called)
    assert (result.policy, result.status, result.blacklisted) == ("blacklist", "OK", True)


async def test_a_vip_in_national_form_is_found_from_the_international_form() -> None:
    """VIP stored as 0912406496, caller presents +84912406496: vip, OK."""
    lists = RecordingLists()
    await lists.vip_add(["0912406496"])
    result = await check(lists).execute("+84912406496")
    assert (result.policy, result.status, result.vip) == ("vip", "OK", True)


async def test_all_forms_are_looked_up_in_one_call_within_the_store_timeout() -> None:
    """One lookup, every form, the store's timeout when the caller can wait longer."""
    lists = RecordingLists()
    await check(lists).execute("0084912406496", within_s=0.45)
    assert lists.lookups == [(("84912406496", "0912406496", "+84912406496", "0084912406496"), 0.3)]


async def test_the_lookup_timeout_is_cut_to_what_the_caller_can_wait() -> None:
    """With 0.12 s left, the lookup gets 0.12 s, not the store's 0.3 s."""
    lists = RecordingLists()
    await check(lists).execute("0912406496", within_s=0.12)
    assert lists.lookups[0][1] == 0.12


@pytest.mark.parametrize("caller", ["", "  ", "anonymous", "Unknown", "RESTRICTED", None])
@pytest.mark.parametrize("anonymous_policy", ["normal", "blacklist"])
async def test_anonymous_callers_get_the_anonymous_policy_without_a_lookup(caller, anonymous_policy: str) -> None:
    """Anonymous or empty caller id: anonymous_policy, OK, Redis not asked."""
    lists = RecordingLists()
    result = await check(lists, anonymous_policy).execute(caller)
    assert (result.policy, result.status) == (anonymous_policy, "OK")
    assert lists.lookups == []


@pytest.mark.parametrize("caller", ["abc", "0912*406", "+1001", "sip:0912406496@pbx"])
async def test_bad_input_is_an_error_and_never_looked_up(caller: str) -> None:
    """Not a phone number: ERROR with the anonymous policy, no lookup."""
    lists = RecordingLists()
    result = await check(lists).execute(caller)
    assert (result.policy, result.status) == ("normal", "ERROR")
    assert lists.lookups == []


@pytest.mark.parametrize("fail_closed,policy", [(False, "normal"), (True, "blacklist")])
async def test_an_unreachable_store_is_degraded_open_or_closed(fail_closed: bool, policy: str) -> None:
    """Store unavailable: DEGRADED, normal by default, blacklist when fail_closed."""
    lists = RecordingLists()
    await lists.vip_add(["84912406496"])
    lists.available = False
    result = await check(lists, fail_closed=fail_closed).execute("0912406496")
    assert (result.policy, result.status, result.vip) == (policy, "DEGRADED", False)


async def test_no_time_left_is_degraded_not_late() -> None:
    """A caller with no time left gets DEGRADED at once rather than a late answer."""
    result = await check(RecordingLists()).execute("0912406496", within_s=0.0)
    assert result.status == "DEGRADED"


async def test_an_extension_is_looked_up_as_written() -> None:
    """A blacklisted extension 1001 is found when 1001 calls."""
    lists = RecordingLists()
    await lists.blacklist_add(["1001"], 86400)
    assert (await check(lists).execute("1001")).policy == "blacklist"


@given(st.sets(st.sampled_from(FORMS)), st.sets(st.sampled_from(FORMS)), st.sampled_from(FORMS))
async def test_the_answer_depends_on_the_number_not_on_how_it_is_written(blacklisted, vip, called) -> None:
    """Any mix of forms stored on either list: every written form of the caller gets the same answer."""
    lists = RecordingLists()
    await lists.blacklist_add(sorted(blacklisted), 86400)
    await lists.vip_add(sorted(vip))
    results = {await check(lists).execute(form) for form in FORMS}
    assert len(results) == 1
    (result,) = results
    assert result.policy == ("blacklist" if blacklisted else "vip" if vip else "normal")

