"""The event's ``metrics`` object: 0/1 flags consumers sum to count calls per state."""
from __future__ import annotations

from dataclasses import dataclass

DIRECTIONS = ("inbound", "outbound", "internal")


@dataclass(frozen=True)
class CallMetrics:
    """Flags in the order of the event contract (docs/event.schema.json)."""

    ivr: int = 0
    ring: int = 0
    queue: int = 0
    answer: int = 0
    inbound: int = 0
    outbound: int = 0
    internal: int = 0

    def as_dict(self) -> dict[str, int]:
        return {
            "ivr": self.ivr,
            "ring": self.ring,
            "queue": self.queue,
            "answer": self.answer,
            "inbound": self.inbound,
            "outbound": self.outbound,
            "internal": self.internal,
        }


class MetricsCalculator:
    """Derives the flags from the event's own fields (statuses and direction are case-insensitive)."""

    def calculate(self, direction: str, call_status: str, queue_name: str, answer_time: str) -> CallMetrics:
        status = call_status.strip().lower()
        way = direction.strip().lower()
        return CallMetrics(
            ivr=int(status == "ivr"),
            ring=int(status == "ringing"),
            queue=int(queue_name != ""),
            answer=int(answer_time != "" or status == "answered"),
            inbound=int(way == "inbound"),
            outbound=int(way == "outbound"),
            internal=int(way == "internal"),
        )
