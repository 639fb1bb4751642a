"""What each benchmarked call looks like: the agi_* header Asterisk 22 sends, the channel's dialplan
variables, and the check that decides whether the server answered it right.

A scenario is built once per load run; ``new_call()`` is called per call and must stay cheap.
"""
from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Optional

from bench.channel import Channel

#: numbers the benchmark seeds in Redis (canonical E.164 digits without '+', as the CLI stores them)
BLACKLISTED = "84912000001"
VIP = "84912000002"
CHECKPHONE_NUMBERS: tuple[tuple[str, str], ...] = (
    ("0912000001", "blacklist"),  # national form of BLACKLISTED
    ("+84912000002", "vip"),  # international form of VIP
    ("0912000003", "normal"),
    ("0912000004", "normal"),
)
#: callers not seen lately: far more distinct numbers than callflow keeps parsed (8,192), so each
#: is read by phonenumbers afresh, as a call center's first-time callers are
FRESH_CALLERS = 90_000


def fresh_numbers() -> Iterator[str]:
    """Valid VN mobile numbers, none of them seeded (policy ``normal``), 90,000 before one repeats."""
    for n in itertools.cycle(range(FRESH_CALLERS)):
        yield f"09130{n:05d}"
BENCH_CUSTOMER = "bench_customer"

_HEADER = (
    "agi_network: yes\n"
    "agi_network_script: {script}\n"
    "agi_request: agi://{host}:{port}/{script}\n"
    "agi_channel: {channel}\n"
    "agi_language: en\n"
    "agi_type: PJSIP\n"
    "agi_uniqueid: {uniqueid}\n"
    "agi_version: 22.10.1\n"
    "agi_callerid: {callerid}\n"
    "agi_calleridname: Nguy\u1ec5n V\u0103n A\n"
    "agi_callingpres: 0\n"
    "agi_callingani2: 0\n"
    "agi_callington: 0\n"
    "agi_callingtns: 0\n"
    "agi_dnid: 0866801898\n"
    "agi_rdnis: unknown\n"
    "agi_context: from-trunk\n"
    "agi_extension: s\n"
    "agi_priority: 2\n"
    "agi_enhanced: 0.0\n"
    "agi_accountcode: \n"
    "agi_threadid: 139709982488256\n"
    "{args}\n"
)


@dataclass
class Call:
    """One call in flight: the bytes to send first, the channel that answers, what is expected."""

    header: bytes
    channel: Channel
    expected_policy: Optional[str] = None


class Scenario:
    """A route's calls. ``check`` returns None when the server did its job, else an error kind."""

    name = "floor"
    script = "floor"

    def __init__(self, host: str = "127.0.0.1", port: int = 4573) -> None:
        self.host, self.port = host, port
        #: False against the floor server, which only sets CALLFLOW_STATUS=OK
        self.full_check = True
        # the header's constant parts substituted once; per call only ids and numbers change
        self._template = _HEADER.format(
            script=self.script, host=host, port=port, channel="%s", uniqueid="%s", callerid="%s", args="%s"
        )
        self._seq = itertools.count(1)
        self._epoch = int(time.time())

    def header(self, uniqueid: str, channel: str, callerid: str, args: list[str]) -> bytes:
        arg_lines = "".join(f"agi_arg_{i}: {a}\n" for i, a in enumerate(args, 1))
        return (self._template % (channel, uniqueid, callerid, arg_lines)).encode("utf-8")

    def ids(self) -> tuple[str, str]:
        seq = next(self._seq)
        return f"{self._epoch}.{seq}", f"PJSIP/trunk-{seq & 0xFFFFFFFF:08x}"

    def new_call(self) -> Call:
        uniqueid, name = self.ids()
        return Call(self.header(uniqueid, name, "0912000003", []), Channel(name, uniqueid, {}, {}))

    def check(self, call: Call) -> Optional[str]:
        status = call.channel.set_by_server.get("CALLFLOW_STATUS")
        if status != "OK":
            reason = call.channel.set_by_server.get("CALLFLOW_ERROR")
            return f"CALLFLOW_STATUS={status}" + (f" CALLFLOW_ERROR={reason}" if reason else "")
        if call.channel.protocol_errors:
            return call.channel.protocol_errors[0]
        return None


class CheckphoneScenario(Scenario):
    """Numbers cycle over blacklisted, VIP and normal ones; the policy set must match the data.
    The normal ones are fresh callers (``fresh_numbers``): half the calls of the mix."""

    name = script = "checkphone"

    def __init__(self, host: str = "127.0.0.1", port: int = 4573) -> None:
        super().__init__(host, port)
        self._numbers = itertools.cycle(CHECKPHONE_NUMBERS)
        self._fresh = fresh_numbers()

    def new_call(self) -> Call:
        uniqueid, name = self.ids()
        number, policy = next(self._numbers)
        if policy == "normal":
            number = next(self._fresh)
        header = self.header(uniqueid, name, number, [number])
        return Call(header, Channel(name, uniqueid, {}, {}), expected_policy=policy)

    def check(self, call: Call) -> Optional[str]:
        error = super().check(call)
        if error or not self.full_check:
            return error
        got = call.channel.set_by_server
        if got.get("PHONE_POLICY") != call.expected_policy:
            return f"PHONE_POLICY={got.get('PHONE_POLICY')} (expected {call.expected_policy})"
        flags = (got.get("PHONE_BLACKLISTED"), got.get("PHONE_VIP"))
        if flags != _FLAGS[call.expected_policy or "normal"]:
            return f"PHONE_BLACKLISTED/PHONE_VIP={flags}"
        return None


_FLAGS = {"blacklist": ("1", "0"), "vip": ("0", "1"), "normal": ("0", "0")}
_STATUSES = ("ringing", "answered", "hangup")


class EventScenario(Scenario):
    """A call's dialplan variables as the SPEC lists them; statuses cycle ringing/answered/hangup."""

    name = script = "event"

    def __init__(self, host: str = "127.0.0.1", port: int = 4573, customer: str = BENCH_CUSTOMER) -> None:
        super().__init__(host, port)
        self.customer = customer
        self._statuses = itertools.cycle(_STATUSES)
        self._fresh = fresh_numbers()

    def new_call(self) -> Call:
        uniqueid, name = self.ids()
        status = next(self._statuses)
        variables: dict[str, str] = {
            "CALL_ID": uniqueid, "DIRECTION": "inbound", "CUSTOMER_ID": self.customer,
            "TRUNK": "0866801898", "UNIQUE_ID": uniqueid, "PHONE_DIAL": next(self._fresh),
            "LINKED_ID": uniqueid, "CALL_STATUS": status, "QUEUE_NAME": "ky_thuat",
            "HANDLE_TIME": "" if status != "hangup" else "42", "DIAL_MODE": "",
        }
        shared = {"ANSWER_TIME": str(self._epoch), "AGENT_EXTEN": "1001", "AGENT_ACCOUNT": "dh02"}
        header = self.header(uniqueid, name, "0912406496", [])
        return Call(header, Channel(name, uniqueid, variables, shared))


SCENARIOS = {"floor": Scenario, "checkphone": CheckphoneScenario, "event": EventScenario}


def build_scenario(
    route: str, host: str, port: int, customer: str = BENCH_CUSTOMER, floor: bool = False
) -> Scenario:
    """The calls of ``route``; with ``floor`` the same bytes, but only CALLFLOW_STATUS=OK is checked."""
    scenario = EventScenario(host, port, customer) if route == "event" else SCENARIOS[route](host, port)
    scenario.full_check = not floor
    return scenario
