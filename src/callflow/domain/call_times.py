"""Time rules of the call event: epochs in Asterisk ids, answer times, wall-clock formats."""
from __future__ import annotations

import re
from datetime import datetime, timezone, tzinfo
from typing import Optional

WALL_CLOCK_FORMAT = "%Y-%m-%d %H:%M:%S"
TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%S.%f"

# Asterisk ids are EPOCH.SEQ, prefixed with "SYSTEMNAME-" when asterisk.conf sets systemname.
_ASTERISK_ID = re.compile(r"(?:.*-)?([0-9]{1,11})\.[0-9]{1,12}")
_EPOCH = re.compile(r"[0-9]{1,11}(?:\.[0-9]{1,9})?")
_WALL_CLOCK = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}:[0-9]{2}")


class UnparseableTime(ValueError):
    """An answer time that is neither an epoch nor ``YYYY-MM-DD HH:MM:SS``."""


# isoformat with an explicit timespec writes the same text as TIMESTAMP_FORMAT / WALL_CLOCK_FORMAT
# (fraction always six digits, seconds always shown) at a fraction of strftime's cost.
def utc_timestamp(moment: datetime) -> str:
    """ISO-8601 in UTC with microseconds always shown and no offset (the event's ``timestamp``)."""
    return moment.astimezone(timezone.utc).replace(tzinfo=None).isoformat("T", "microseconds")


def wall_clock(moment: datetime, zone: tzinfo) -> str:
    """``YYYY-MM-DD HH:MM:SS`` as a clock in ``zone`` shows it."""
    return moment.astimezone(zone).replace(tzinfo=None).isoformat(" ", "seconds")


def epoch_of_asterisk_id(asterisk_id: str) -> Optional[datetime]:
    """When the channel of ``EPOCH.SEQ`` was created, or None when the id is not of that form."""
    match = _ASTERISK_ID.fullmatch(asterisk_id)
    return _from_epoch(match.group(1)) if match else None


def parse_answer_time(raw: str, zone: tzinfo) -> Optional[datetime]:
    """``ANSWER_TIME`` as an aware time: an epoch (``${EPOCH}``, maybe with a fraction) or local
    ``YYYY-MM-DD HH:MM:SS``. None when unset or ``0`` (a dialplan's "not answered yet");
    ``UnparseableTime`` for anything else."""
    text = raw.strip()
    if text in ("", "0"):
        return None
    if _EPOCH.fullmatch(text):
        moment = _from_epoch(text)
        if moment is not None:
            return moment
    elif _WALL_CLOCK.fullmatch(text):
        try:
            return datetime.strptime(text, WALL_CLOCK_FORMAT).replace(tzinfo=zone)
        except ValueError:
            pass
    raise UnparseableTime(f"ANSWER_TIME {raw[:64]!r} is neither an epoch nor YYYY-MM-DD HH:MM:SS")


def whole_seconds(start: datetime, end: datetime) -> int:
    """Whole seconds from ``start`` to ``end``; 0 when ``end`` is not after ``start``."""
    return max(0, int((end - start).total_seconds()))


def _from_epoch(text: str) -> Optional[datetime]:
    try:
        return datetime.fromtimestamp(float(text), tz=timezone.utc)
    except (OverflowError, OSError, ValueError):
        return None
