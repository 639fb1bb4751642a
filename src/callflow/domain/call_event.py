"""The call event consumers receive and the raw values it is built from.

The event is a contract with consumers: docs/event.schema.json (docs/reference.md, Events on RabbitMQ).
"""
from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field

from callflow.domain.call_metrics import CallMetrics

# Dialplan names of the values read by the event route, in the order docs/reference.md lists them (AGI variables).
DIALPLAN_NAMES = (
    "CALL_ID", "DIRECTION", "CUSTOMER_ID", "TRUNK", "UNIQUE_ID", "PHONE_DIAL", "LINKED_ID",
    "CALL_STATUS", "QUEUE_NAME", "HANDLE_TIME", "DIAL_MODE", "ANSWER_TIME", "AGENT_EXTEN",
    "AGENT_ACCOUNT",
)


@dataclass(frozen=True)
class CallValues:
    """What the dialplan gave (unset and empty are the same: ""), plus the ``agi_*`` bits used."""

    call_id: str = ""
    direction: str = ""
    customer_id: str = ""
    trunk: str = ""
    unique_id: str = ""
    phone_dial: str = ""
    linked_id: str = ""
    call_status: str = ""
    queue_name: str = ""
    handle_time: str = ""
    dial_mode: str = ""
    answer_time: str = ""
    agent_exten: str = ""
    agent_account: str = ""
    agi_uniqueid: str = ""
    agi_callerid: str = ""
    agi_channel: str = ""

    @classmethod
    def from_dialplan(cls, values: Mapping[str, str], env: Mapping[str, str]) -> CallValues:
        """From ``{DIALPLAN_NAME: value}`` and the ``agi_*`` header block."""
        given = {name.lower(): values.get(name) or "" for name in DIALPLAN_NAMES}
        agi = {key: env.get(key) or "" for key in ("agi_uniqueid", "agi_callerid", "agi_channel")}
        return cls(**given, **agi)

    def as_raw(self) -> dict[str, str]:
        """Every value under the name it has in the dialplan (or the AGI header), for error reports."""
        raw = OrderedDict((name, getattr(self, name.lower())) for name in DIALPLAN_NAMES)
        raw.update(agi_uniqueid=self.agi_uniqueid, agi_callerid=self.agi_callerid, agi_channel=self.agi_channel)
        return dict(raw)


@dataclass(frozen=True)
class CallEvent:
    """One call event: exactly the fields of the contract, in its order; all strings but ``metrics``."""

    timestamp: str
    call_id: str
    direction: str
    customer_id: str
    trunk: str
    unique_id: str
    phone_number: str
    linked_id: str
    call_status: str
    queue_name: str
    bill_sec: str
    duration: str
    start_time: str
    answer_time: str
    end_time: str
    agent_exten: str
    agent_account: str
    dial_mode: str
    channel: str
    metrics: CallMetrics = field(default_factory=CallMetrics)

    def to_dict(self) -> dict[str, object]:
        """Field order is part of the contract: the generated ``__init__`` sets the fields in their
        declared order, so the instance's ``__dict__`` holds them in that order (a test pins it)."""
        body: dict[str, object] = dict(self.__dict__)
        body["metrics"] = self.metrics.as_dict()  # replaced in place: stays last
        return body

    def to_json(self) -> bytes:
        """UTF-8 JSON as consumers already parse it (``", "`` and ``": "`` separators, no escapes)."""
        return encode_json(self.to_dict())


_ENCODER = json.JSONEncoder(ensure_ascii=False)  # json.dumps builds one per call with these options


def encode_json(body: dict[str, object]) -> bytes:
    """Compact-ish JSON, non-ASCII kept as UTF-8 (a lone surrogate, never valid UTF-8, becomes ``?``)."""
    return _ENCODER.encode(body).encode("utf-8", "replace")
