"""What checkphone tells the dialplan: is the caller blacklisted, VIP, or neither, and how sure we are.

The four channel variables are a contract with dialplans (docs/reference.md, AGI variables): ``PHONE_BLACKLISTED`` 1/0,
``PHONE_VIP`` 1/0, ``PHONE_POLICY`` blacklist|vip|normal, ``CALLFLOW_STATUS`` OK|DEGRADED|ERROR.

Decisions: ADR 0021.
"""
from __future__ import annotations

from dataclasses import dataclass

BLACKLIST, VIP, NORMAL = "blacklist", "vip", "normal"
OK, DEGRADED, ERROR = "OK", "DEGRADED", "ERROR"
ANONYMOUS_POLICIES = (NORMAL, BLACKLIST)


@dataclass(frozen=True)
class PhoneListing:
    """Which lists a number is on (any of its forms)."""

    blacklisted: bool = False
    vip: bool = False


@dataclass(frozen=True)
class PolicyResult:
    """The answer for one call; ``variables()`` are what the dialplan receives, in the order set."""

    policy: str
    status: str
    blacklisted: bool = False
    vip: bool = False

    def variables(self) -> tuple[tuple[str, str], ...]:
        """Policy first (what a dialplan branches on), the status last (set means all are set)."""
        return (
            ("PHONE_POLICY", self.policy),
            ("PHONE_BLACKLISTED", "1" if self.blacklisted else "0"),
            ("PHONE_VIP", "1" if self.vip else "0"),
            ("CALLFLOW_STATUS", self.status),
        )


class PhonePolicy:
    """Turns what is known about a caller into a ``PolicyResult``.

    - listed numbers: blacklist wins over VIP; status OK;
    - anonymous callers (no usable caller id): ``anonymous_policy`` (normal or blacklist); status OK;
    - bad input (not a phone number): the caller is unidentifiable, so ``anonymous_policy``; ERROR;
    - lists unreachable (``degraded``, ``error``): normal (fail-open), or blacklist when
      ``fail_closed``; status DEGRADED or ERROR.

    Whenever the policy is blacklist, ``PHONE_BLACKLISTED`` is 1, so a dialplan testing either
    variable blocks the call.
    """

    def __init__(self, anonymous_policy: str = NORMAL, fail_closed: bool = False) -> None:
        if anonymous_policy not in ANONYMOUS_POLICIES:
            raise ValueError(f"anonymous_policy must be one of {ANONYMOUS_POLICIES}, not {anonymous_policy!r}")
        self.anonymous_policy = anonymous_policy
        self.fail_closed = fail_closed

    def decide(self, listing: PhoneListing) -> PolicyResult:
        if listing.blacklisted:
            return PolicyResult(BLACKLIST, OK, blacklisted=True, vip=listing.vip)
        if listing.vip:
            return PolicyResult(VIP, OK, vip=True)
        return PolicyResult(NORMAL, OK)

    def anonymous(self) -> PolicyResult:
        return self._default(self.anonymous_policy, OK)

    def invalid(self) -> PolicyResult:
        return self._default(self.anonymous_policy, ERROR)

    def degraded(self) -> PolicyResult:
        return self._unknown(DEGRADED)

    def error(self) -> PolicyResult:
        return self._unknown(ERROR)

    def _unknown(self, status: str) -> PolicyResult:
        return self._default(BLACKLIST if self.fail_closed else NORMAL, status)

    @staticmethod
    def _default(policy: str, status: str) -> PolicyResult:
        return PolicyResult(policy, status, blacklisted=policy == BLACKLIST)
