"""Use cases of the admin CLI on the phone lists: add (one number or a whole file) and remove."""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Callable, Optional

from callflow.domain.errors import InvalidPhoneNumber
from callflow.domain.phone import PhoneNumber, is_anonymous
from callflow.service_layer.ports import PhoneLists

BLACKLIST, VIP = "blacklist", "vip"
LIST_NAMES = (BLACKLIST, VIP)


@dataclass(frozen=True)
class RejectedNumber:
    """A number that was not added: where it came from (line or position), what it was, why."""

    line: int
    text: str
    reason: str


@dataclass
class AddReport:
    """How far an addition got: numbers written to the store (``already`` of them were listed before:
    renewed), numbers refused."""

    added: int = 0
    rejected: list[RejectedNumber] = field(default_factory=list)
    already: int = 0


#: hears of each batch written: the report so far, the batch's canonical numbers, those already listed
Progress = Callable[[AddReport, tuple[str, ...], frozenset[str]], None]
#: (line, text) or (line, text, seconds): a row of its own TTL ("" or absent: the one given to execute)
NumberRow = Sequence


class AddNumbers:
    """Add numbers to the blacklist (for ``ttl_s`` seconds, 0 = until removed) or the VIP set.

    - each number is stored in its canonical form, the form checkphone looks up first;
    - a text that is not a number, or an anonymous caller id, is refused with its line and reason,
      and the others are still added;
    - a row may carry its own TTL in seconds (an export of the blacklist does: an import keeps each
      entry's remaining time); a TTL that is not a whole number of seconds refuses the row;
    - writes go in batches of ``batch_size`` (one round trip each); ``progress`` hears of each
      batch written (the report so far, the canonical numbers of the batch, those already listed).
    """

    def __init__(self, lists: PhoneLists, region: str, batch_size: int = 1000) -> None:
        self._lists = lists
        self._region = region
        self._batch_size = batch_size

    async def execute(self, list_name: str, numbers: Iterable[NumberRow], ttl_s: int = 0,
                      progress: Optional[Progress] = None) -> AddReport:
        report = AddReport()
        batch: list[str] = []
        ttls: list[int] = []
        for row in numbers:
            line, text = row[0], row[1]
            ttl = _row_ttl(row, ttl_s)
            if ttl is None:
                report.rejected.append(RejectedNumber(line, text, f"TTL {row[2]!r} is not a whole number of seconds"))
                continue
            canonical = self._canonical(line, text, report)
            if canonical is not None:
                batch.append(canonical)
                ttls.append(ttl)
            if len(batch) >= self._batch_size:
                await self._write(list_name, batch, ttls, report, progress)
        await self._write(list_name, batch, ttls, report, progress)
        return report

    def _canonical(self, line: int, text: str, report: AddReport) -> Optional[str]:
        if is_anonymous(text):
            report.rejected.append(RejectedNumber(line, text, "an anonymous caller id is not a number "
                                                              "(see CALLFLOW_ANONYMOUS_POLICY)"))
            return None
        try:
            return PhoneNumber.parse(text, self._region).canonical
        except InvalidPhoneNumber as error:
            report.rejected.append(RejectedNumber(line, text, str(error)))
            return None

    async def _write(self, list_name: str, batch: list[str], ttls: list[int], report: AddReport,
                     progress: Optional[Progress]) -> None:
        if not batch:
            return
        if list_name == BLACKLIST:
            same = all(ttl == ttls[0] for ttl in ttls)
            already = await self._lists.blacklist_add(batch, ttls[0], None if same else list(ttls))
        else:
            already = await self._lists.vip_add(batch)
        report.added += len(batch)
        report.already += len(already)
        if progress is not None:
            progress(report, tuple(batch), frozenset(already))
        batch.clear()
        ttls.clear()


def _row_ttl(row: NumberRow, default_s: int) -> Optional[int]:
    """The row's own TTL when it has one, else ``default_s``; None when its TTL is not valid."""
    text = str(row[2]).strip() if len(row) > 2 and row[2] is not None else ""
    if not text:
        return default_s
    if text.isdigit() and text.isascii() and len(text) <= 10:
        return int(text)
    return None


class RemoveNumber:
    """Take a number off the blacklist or the VIP set, in every form checkphone would find it under.

    Returns how many entries went; raises ``InvalidPhoneNumber`` for a text that is not a number.
    """

    def __init__(self, lists: PhoneLists, region: str) -> None:
        self._lists = lists
        self._region = region

    async def execute(self, list_name: str, text: str) -> int:
        forms = PhoneNumber.parse(text, self._region).lookup_forms()
        if list_name == BLACKLIST:
            return await self._lists.blacklist_remove(forms)
        return await self._lists.vip_remove(forms)
