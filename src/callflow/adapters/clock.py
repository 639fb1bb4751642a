"""The real clock."""
from __future__ import annotations

from datetime import datetime, timezone


class SystemClock:
    """Implements the Clock port with the system's UTC time."""

    def now(self) -> datetime:
        return datetime.now(timezone.utc)
