"""The RecordCallEvent use case on in-memory adapters: custody first, statistics second."""
from __future__ import annotations

import json
from dataclasses import replace
from typing import List, Optional

from callflow.domain.envelope import INVALID_ROUTING_KEY
from callflow.service_layer.record_call_event import ERROR, OK, RecordCallEvent
from tests.support.call_events import SEED_JSON, SEED_VALUES, FixedClock, make_factory
from tests.support.event_doubles import JournalingStats, RecordingDelivery
from tests.support.event_schema import check_message


def make(confirm: bool = True, refuse: Optional[str] = None, stats_down: bool = False):
    journal: List[str] = []
    delivery = RecordingDelivery(journal, confirm, refuse)
    stats = JournalingStats(journal, stats_down)
    return RecordCallEvent(make_factory(), delivery, stats, FixedClock()), delivery, stats, journal


async def test_event_is_in_custody_before_it_is_counted():
    """The seed event goes to call.events.{customer} first; only then is the call counted."""
    record, delivery, stats, journal = make()
    custody_seen: List[List[str]] = []
    outcome = await record.execute(SEED_VALUES, 0.4, on_custody=lambda: custody_seen.append(list(journal)))
    assert (outcome.status, outcome.reason, outcome.confirmed) == (OK, "", True)
    assert journal == ["custody", "stats"] and custody_seen == [["custody"]]
    assert [(e.routing_key, e.body) for e in delivery.taken] == [("call.events.11223344", SEED_JSON)]
    assert delivery.waits == [0.4]
    assert await stats.members("11223344", "ringing") == {"1752899481.313"}


async def test_held_in_the_outbox_is_still_ok():
    """An event the broker did not confirm in time but the outbox holds is OK, not confirmed."""
    record, _, _, _ = make(confirm=False)
    outcome = await record.execute(SEED_VALUES, 0.0)
    assert (outcome.status, outcome.confirmed) == (OK, False)


async def test_refused_custody_is_an_error_and_not_counted():
    """When the event cannot be stored durably: ERROR 'unavailable', and no statistics."""
    record, _, stats, journal = make(refuse="disk full")
    outcome = await record.execute(SEED_VALUES, 0.4, on_custody=lambda: journal.append("told"))
    assert outcome.status == ERROR and outcome.reason == "unavailable: disk full"
    assert journal == [] and await stats.counts("11223344") == {}


async def test_statistics_down_still_acknowledges_the_event():
    """Redis down after custody: OK (the event is safe), with the failure reported for the log."""
    record, delivery, _, _ = make(stats_down=True)
    outcome = await record.execute(SEED_VALUES, 0.4)
    assert outcome.status == OK and len(delivery.taken) == 1
    assert "CallStatsUnavailable" in outcome.stats_error


async def test_invalid_event_is_reported_not_counted():
    """A key-unsafe customer id: the raw values go to call.events.invalid with the reason; no stats."""
    record, delivery, stats, journal = make()
    values = replace(SEED_VALUES, customer_id="Nguyễn Văn A (VIP) [x]")
    outcome = await record.execute(values, 0.4, on_custody=lambda: journal.append("told"))
    assert outcome.status == ERROR and outcome.reason.startswith("invalid: CUSTOMER_ID contains 'ễ'")
    assert journal == ["custody"]
    [report] = delivery.taken
    assert report.routing_key == INVALID_ROUTING_KEY
    body = check_message(report.routing_key, report.body)
    assert body["values"]["CUSTOMER_ID"] == "Nguyễn Văn A (VIP) [x]" and body["reason"] in outcome.reason


async def test_missing_values_are_reported_too():
    """An empty dialplan (nothing set) is still reported, naming every missing value."""
    record, delivery, _, _ = make()
    outcome = await record.execute(replace(SEED_VALUES, customer_id="", call_status="", call_id="", unique_id=""), 0.1)
    assert outcome.status == ERROR
    for name in ("CUSTOMER_ID", "CALL_STATUS", "CALL_ID"):
        assert f"{name} is missing" in outcome.reason
    assert json.loads(delivery.taken[0].body)["reason"] in outcome.reason


async def test_invalid_report_refused_says_so():
    """If even the report cannot be stored, the reason says both things."""
    record, _, _, _ = make(refuse="outbox unusable")
    outcome = await record.execute(replace(SEED_VALUES, customer_id=""), 0.1)
    assert outcome.status == ERROR and "CUSTOMER_ID is missing" in outcome.reason and "outbox unusable" in outcome.reason


async def test_answer_time_warning_reaches_the_outcome():
    """An unparseable ANSWER_TIME is carried back for the route to log."""
    record, _, _, _ = make()
    outcome = await record.execute(replace(SEED_VALUES, answer_time="later"), 0.1)
    assert outcome.status == OK and len(outcome.warnings) == 1
