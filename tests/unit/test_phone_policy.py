"""PhonePolicy: the whole decision table of checkphone (SPEC §1, ADR 0021)."""
from __future__ import annotations

import itertools

import pytest

from callflow.domain.policy import PhoneListing, PhonePolicy, PolicyResult

SETTINGS = list(itertools.product(["normal", "blacklist"], [False, True]))  # anonymous_policy, fail_closed
LISTINGS = {
    # (blacklisted, vip): (PHONE_POLICY, PHONE_BLACKLISTED, PHONE_VIP)
    (False, False): ("normal", "0", "0"),
    (False, True): ("vip", "0", "1"),
    (True, False): ("blacklist", "1", "0"),
    (True, True): ("blacklist", "1", "1"),
}


def variables(result: PolicyResult) -> dict:
    return dict(result.variables())


@pytest.mark.parametrize("anonymous_policy,fail_closed", SETTINGS)
@pytest.mark.parametrize("listed", sorted(LISTINGS))
def test_listed_numbers_blacklist_wins_over_vip(anonymous_policy: str, fail_closed: bool, listed) -> None:
    """A looked-up number: blacklist wins over VIP, status OK, whatever the other settings say."""
    result = PhonePolicy(anonymous_policy, fail_closed).decide(PhoneListing(*listed))
    policy, blacklisted, vip = LISTINGS[listed]
    assert variables(result) == {"PHONE_POLICY": policy, "PHONE_BLACKLISTED": blacklisted,
                                 "PHONE_VIP": vip, "CALLFLOW_STATUS": "OK"}


@pytest.mark.parametrize("anonymous_policy,fail_closed", SETTINGS)
def test_anonymous_callers_get_the_anonymous_policy(anonymous_policy: str, fail_closed: bool) -> None:
    """An anonymous caller: anonymous_policy, status OK; fail_closed plays no part."""
    result = PhonePolicy(anonymous_policy, fail_closed).anonymous()
    flag = "1" if anonymous_policy == "blacklist" else "0"
    assert variables(result) == {"PHONE_POLICY": anonymous_policy, "PHONE_BLACKLISTED": flag,
                                 "PHONE_VIP": "0", "CALLFLOW_STATUS": "OK"}


@pytest.mark.parametrize("anonymous_policy,fail_closed", SETTINGS)
def test_bad_input_is_an_error_with_the_anonymous_policy(anonymous_policy: str, fail_closed: bool) -> None:
    """Text that is not a number: the caller is unidentifiable, so anonymous_policy, status ERROR."""
    result = PhonePolicy(anonymous_policy, fail_closed).invalid()
    assert (result.policy, result.status, result.blacklisted, result.vip) == (
        anonymous_policy, "ERROR", anonymous_policy == "blacklist", False)


@pytest.mark.parametrize("anonymous_policy,fail_closed", SETTINGS)
@pytest.mark.parametrize("outcome,status", [("degraded", "DEGRADED"), ("error", "ERROR")])
def test_unknown_listing_fails_open_or_closed(anonymous_policy: str, fail_closed: bool, outcome: str,
                                              status: str) -> None:
    """Store unreachable or internal error: normal (fail-open) or blacklist when fail_closed."""
    result = getattr(PhonePolicy(anonymous_policy, fail_closed), outcome)()
    policy = "blacklist" if fail_closed else "normal"
    assert variables(result) == {"PHONE_POLICY": policy, "PHONE_BLACKLISTED": "1" if fail_closed else "0",
                                 "PHONE_VIP": "0", "CALLFLOW_STATUS": status}


def test_variables_come_policy_first_status_last() -> None:
    """The order set on the channel: PHONE_POLICY first, CALLFLOW_STATUS last."""
    names = [name for name, _ in PhonePolicy().decide(PhoneListing()).variables()]
    assert names == ["PHONE_POLICY", "PHONE_BLACKLISTED", "PHONE_VIP", "CALLFLOW_STATUS"]


def test_an_unknown_anonymous_policy_is_refused() -> None:
    """anonymous_policy is normal or blacklist; anything else is a configuration error."""
    with pytest.raises(ValueError, match="anonymous_policy"):
        PhonePolicy("vip")
