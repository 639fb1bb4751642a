"""Call-event inputs for tests: the seed example (SPEC §2), a fixed clock, hypothesis strategies."""
from __future__ import annotations

import string
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from hypothesis import strategies as st

from callflow.domain.call_event import CallValues
from callflow.domain.call_event_factory import CallEventFactory
from callflow.domain.identifiers import MAX_IDENTIFIER_LENGTH

TERMINAL = frozenset("hangup completed ended busy noanswer failed cancelled abandoned missed".split())
ZONE = ZoneInfo("Asia/Ho_Chi_Minh")

#: the moment the seed example was built, and its inputs and output, byte for byte
SEED_NOW = datetime(2025, 7, 19, 4, 31, 21, 262589, tzinfo=timezone.utc)
SEED_VALUES = CallValues(
    call_id="1752899481.313", direction="inbound", customer_id="11223344", trunk="0866801898",
    unique_id="1752899481.313", phone_dial="0912406496", linked_id="1752899481.313", call_status="ringing",
    queue_name="ky_thuat", handle_time="", dial_mode="", answer_time="", agent_exten="1001",
    agent_account="dh02", agi_uniqueid="1752899481.313", agi_callerid="0912406496",
    agi_channel="PJSIP/1001-000000ce",
)
SEED_JSON = (
    b'{"timestamp": "2025-07-19T04:31:21.262589", "call_id": "1752899481.313", "direction": "inbound", '
    b'"customer_id": "11223344", "trunk": "0866801898", "unique_id": "1752899481.313", '
    b'"phone_number": "84912406496", "linked_id": "1752899481.313", "call_status": "ringing", '
    b'"queue_name": "ky_thuat", "bill_sec": "0", "duration": "0", "start_time": "2025-07-19 11:31:21", '
    b'"answer_time": "", "end_time": "", "agent_exten": "1001", "agent_account": "dh02", "dial_mode": "", '
    b'"channel": "PJSIP/1001-000000ce", '
    b'"metrics": {"ivr": 0, "ring": 1, "queue": 1, "answer": 0, "inbound": 1, "outbound": 0, "internal": 0}}'
)


@dataclass
class FixedClock:
    """A Clock that says what it is told (``advance`` moves it)."""

    moment: datetime = SEED_NOW

    def now(self) -> datetime:
        return self.moment

    def advance(self, seconds: float) -> None:
        self.moment += timedelta(seconds=seconds)


def make_factory(region: str = "VN") -> CallEventFactory:
    return CallEventFactory(zone=ZONE, terminal_statuses=TERMINAL, region=region)


identifiers = st.text(alphabet=string.ascii_letters + string.digits + "_.-", min_size=1,
                      max_size=MAX_IDENTIFIER_LENGTH).filter(lambda v: v.strip(".") != "")  # only dots: refused
asterisk_ids = st.builds(lambda e, s: f"{e}.{s}", st.integers(1_000_000_000, 2_000_000_000), st.integers(0, 99999))
statuses = st.sampled_from(sorted(TERMINAL) + ["ringing", "answered", "ivr", "Ringing", "HANGUP", "queued"])
any_text = st.text(max_size=40)
answer_times = st.one_of(
    st.just(""), st.just("0"), any_text,
    st.integers(1_000_000_000, 2_000_000_000).map(str),
    st.datetimes(datetime(2001, 1, 1), datetime(2060, 1, 1)).map(lambda d: d.strftime("%Y-%m-%d %H:%M:%S")),
)
moments = st.datetimes(datetime(2001, 1, 1), datetime(2060, 1, 1), timezones=st.just(timezone.utc))


@st.composite
def valid_call_values(draw) -> CallValues:
    """Values that make an event: keyable customer, status and call id; anything elsewhere."""
    return CallValues(
        call_id=draw(st.one_of(asterisk_ids, identifiers)), direction=draw(st.sampled_from(
            ["inbound", "outbound", "internal", "INBOUND", ""]) | any_text),
        customer_id=draw(identifiers), trunk=draw(any_text), unique_id=draw(st.one_of(asterisk_ids, any_text)),
        phone_dial=draw(st.sampled_from(["0912406496", "+84912406496", "1001", "anonymous", ""]) | any_text),
        linked_id=draw(any_text), call_status=draw(statuses), queue_name=draw(any_text),
        handle_time=draw(st.one_of(st.integers(0, 10**6).map(str), st.just("-5"), any_text)),
        dial_mode=draw(any_text), answer_time=draw(answer_times), agent_exten=draw(any_text),
        agent_account=draw(any_text), agi_uniqueid=draw(asterisk_ids), agi_callerid=draw(any_text),
        agi_channel=draw(any_text),
    )
