"""Use cases of the admin CLI on the phone lists: add (one number or a whole file) and remove."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterable, List, Optional, Tuple

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
    """How far an addition got: numbers written to the store, numbers refused."""

    added: int = 0
    rejected: List[RejectedNumber] = field(default_factory=list)


Progress = Callable[[AddReport, Tuple[str, ...]], None]


class AddNumbers:
    """Add numbers to the blacklist (for ``ttl_s`` seconds, 0 = until removed) or the VIP set.

    - each number is stored in its canonical form, the form checkphone looks up first;
    - a text that is not a number, or an anonymous caller id, is refused with its line and reason,
      and the others are still added;
    - writes go in batches of ``batch_size`` (one round trip each); ``progress`` hears of each
      batch written (the report so far, the canonical numbers of the batch).
    """

    def __init__(self, lists: PhoneLists, region: str, batch_size: int = 1000) -> None:
        self._lists = lists
        self._region = region
        self._batch_size = batch_size

    async def execute(self, list_name: str, numbers: Iterable[Tuple[int, str]], ttl_s: int = 0,
                      progress: Optional[Progress] = None) -> AddReport:
        report = AddReport()
        batch: List[str] = []
        for line, text in numbers:
            canonical = self._canonical(line, text, report)
            if canonical is not None:
                batch.append(canonical)
            if len(batch) >= self._batch_size:
                await self._write(list_name, batch, ttl_s, report, progress)
        await self._write(list_name, batch, ttl_s, report, progress)
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

    async def _write(self, list_name: str, batch: List[str], ttl_s: int, report: AddReport,
                     progress: Optional[Progress]) -> None:
        if not batch:
            return
        if list_name == BLACKLIST:
            await self._lists.blacklist_add(batch, ttl_s)
        else:
            await self._lists.vip_add(batch)
        report.added += len(batch)
        if progress is not None:
            progress(report, tuple(batch))
        batch.clear()


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
