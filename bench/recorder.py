"""Per-call outcomes gathered into buckets (a measurement window, or a phase of a storm)."""
from __future__ import annotations

from array import array
from collections import Counter
from typing import Any, Optional

_MAX_TURNS = 8


class Bucket:
    """Calls attributed to one window, by the time they started."""

    def __init__(self, name: str = "window", deadline_s: Optional[float] = None) -> None:
        self.name = name
        self.deadline_s = deadline_s
        self.latencies = array("d")  # seconds, connect -> server close, answered calls only
        self.calls = 0
        self.commands = 0  # AGI commands the server sent, over all calls
        self.ok = 0
        self.late = 0
        self.errors: Counter = Counter()
        self.statuses: Counter = Counter()
        #: per turn of the server (connect -> 1st command, reply -> next command, ..., reply -> close)
        self.waits: list[array[float]] = []
        self.started_at: Optional[float] = None
        self.ended_at: Optional[float] = None

    def record(self, latency: Optional[float], status: Optional[str], error: Optional[str],
               commands: int = 0) -> None:
        """``latency`` None = the server never closed (timeout, refused)."""
        self.calls += 1
        self.commands += commands
        self.statuses[status or "none"] += 1
        if latency is not None:
            self.latencies.append(latency)
            if self.deadline_s is not None and latency > self.deadline_s:
                self.late += 1
        if error is None:
            self.ok += 1
        else:
            self.errors[error] += 1

    def record_waits(self, waits: list[float]) -> None:
        """How long the server took at each of its turns in one answered call."""
        while len(self.waits) < min(len(waits), _MAX_TURNS):
            self.waits.append(array("d"))
        for turn, wait in enumerate(waits[:_MAX_TURNS]):
            self.waits[turn].append(wait)

    @property
    def seconds(self) -> float:
        if self.started_at is None or self.ended_at is None:
            return 0.0
        return max(self.ended_at - self.started_at, 1e-9)

    def summary(self) -> dict[str, Any]:
        lat = sorted(self.latencies)
        answered = len(lat)
        out: dict[str, Any] = {
            "name": self.name,
            "window_s": round(self.seconds, 3),
            "calls": self.calls,
            "ok": self.ok,
            "failed": self.calls - self.ok,
            "calls_per_s": round(self.calls / self.seconds, 1) if self.seconds else None,
            "p50_ms": _ms(percentile(lat, 0.50)),
            "p90_ms": _ms(percentile(lat, 0.90)),
            "p99_ms": _ms(percentile(lat, 0.99)),
            "max_ms": _ms(lat[-1] if lat else None),
            "answered": answered,
            "not_answered": self.calls - answered,
            "commands_per_call": round(self.commands / self.calls, 2) if self.calls else None,
            "errors": dict(self.errors.most_common(8)),
            "server_turns_p50_ms": [_ms(percentile(sorted(w), 0.5)) for w in self.waits],
            "statuses": dict(self.statuses),
        }
        if self.deadline_s is not None:
            out["deadline_ms"] = round(self.deadline_s * 1000, 1)
            out["within_deadline"] = answered - self.late
            out["late"] = self.late
        return out


def percentile(ordered: Any, q: float) -> Optional[float]:
    """Nearest-rank percentile of an already sorted sequence."""
    if not ordered:
        return None
    index = min(len(ordered) - 1, max(0, int(round(q * len(ordered) + 0.5)) - 1))
    return ordered[index]


def _ms(value: Optional[float]) -> Optional[float]:
    return None if value is None else round(value * 1000, 3)
