"""Use case: the policy for a caller's number (route ``checkphone``)."""
from __future__ import annotations

from typing import Optional

from callflow.domain.errors import InvalidPhoneNumber
from callflow.domain.phone import PhoneNumber, is_anonymous
from callflow.domain.policy import PhonePolicy, PolicyResult
from callflow.service_layer.ports import PhoneLists, PhoneListsUnavailable


class CheckPhone:
    """Decide the policy for the number a caller presents.

    - an anonymous / unknown / empty caller id gets the anonymous policy, without a lookup;
    - text that is not a phone number is an ERROR (the anonymous policy applies);
    - otherwise every form the number may be stored under is looked up in one round trip, within
      ``timeout_s`` (the store's own timeout, cut to what the caller can still wait);
    - when the store does not answer in time, the result is DEGRADED (fail-open or fail-closed).
    """

    def __init__(self, lists: PhoneLists, policy: PhonePolicy, region: str, timeout_s: float) -> None:
        self._lists = lists
        self._policy = policy
        self._region = region
        self._timeout_s = timeout_s

    async def execute(self, raw_number: Optional[str], within_s: Optional[float] = None) -> PolicyResult:
        if is_anonymous(raw_number):
            return self._policy.anonymous()
        try:
            number = PhoneNumber.parse(raw_number or "", self._region)
        except InvalidPhoneNumber:
            return self._policy.invalid()
        timeout_s = self._timeout_s if within_s is None else min(self._timeout_s, within_s)
        try:
            listing = await self._lists.lookup(number.lookup_forms(), timeout_s)
        except PhoneListsUnavailable:
            return self._policy.degraded()
        return self._policy.decide(listing)
