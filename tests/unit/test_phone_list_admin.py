"""AddNumbers and RemoveNumber on the in-memory phone lists: canonical storage, batches, refusals."""
from __future__ import annotations

import pytest

from callflow.adapters.in_memory_phone_lists import InMemoryPhoneLists
from callflow.domain.errors import InvalidPhoneNumber
from callflow.service_layer.phone_list_admin import BLACKLIST, VIP, AddNumbers, AddReport, RemoveNumber
from tests.support.phone_lists import RecordingLists


async def members(lists: InMemoryPhoneLists, name: str) -> list[str]:
    source = lists.blacklist_members() if name == BLACKLIST else lists.vip_members()
    return sorted([m async for m in source])


async def test_numbers_are_stored_canonical_in_batches_with_progress() -> None:
    """5 numbers, batches of 2: three writes of canonical forms with the TTL, progress after each."""
    lists = RecordingLists()
    heard: list[tuple[int, tuple[str, ...]]] = []
    texts = ["0912406496", "+84987654321", "0084911111111", "84922222222", "1001"]
    report = await AddNumbers(lists, "VN", batch_size=2).execute(
        BLACKLIST, enumerate(texts, 1), 3600, lambda r, batch, _: heard.append((r.added, batch)))
    assert [batch for _, batch, _ in lists.batches] == [
        ("84912406496", "84987654321"), ("84911111111", "84922222222"), ("1001",)]
    assert {ttl for _, _, ttl in lists.batches} == {3600}
    assert [added for added, _ in heard] == [2, 4, 5]
    assert report == AddReport(added=5, rejected=[])


async def test_bad_and_anonymous_numbers_are_refused_with_their_line() -> None:
    """Refusals carry line, text and reason; the other numbers are still added."""
    lists = RecordingLists()
    report = await AddNumbers(lists, "VN").execute(VIP, [(2, "0912406496"), (3, "abc"), (7, "anonymous")])
    assert [(r.line, r.text) for r in report.rejected] == [(3, "abc"), (7, "anonymous")]
    assert "not a phone number" in report.rejected[0].reason and "anonymous" in report.rejected[1].reason
    assert await members(lists, VIP) == ["84912406496"]


async def test_nothing_to_add_writes_nothing() -> None:
    """No valid number: no write at all."""
    lists = RecordingLists()
    report = await AddNumbers(lists, "VN").execute(VIP, [(1, "abc")])
    assert (report.added, lists.batches) == (0, [])


@pytest.mark.parametrize("name", [BLACKLIST, VIP])
async def test_remove_takes_off_every_form(name: str) -> None:
    """RemoveNumber deletes canonical, national, +E.164 and 00 forms, and counts them."""
    lists = RecordingLists()
    forms = ["84912406496", "0912406496", "+84912406496", "0084912406496", "84987654321"]
    await (lists.blacklist_add(forms, 0) if name == BLACKLIST else lists.vip_add(forms))
    assert await RemoveNumber(lists, "VN").execute(name, "091 240 6496") == 4
    assert await members(lists, name) == ["84987654321"]


async def test_remove_refuses_text_that_is_not_a_number() -> None:
    """RemoveNumber of 'abc' raises InvalidPhoneNumber and removes nothing."""
    with pytest.raises(InvalidPhoneNumber):
        await RemoveNumber(RecordingLists(), "VN").execute(VIP, "abc")


async def test_rows_may_carry_their_own_ttl_and_already_listed_numbers_are_counted() -> None:
    """A row's own TTL wins over the default; a bad one refuses the row; numbers there before are counted."""
    lists = RecordingLists()
    await lists.blacklist_add(["84912406496"], 60)
    heard: list[tuple[tuple[str, ...], frozenset]] = []
    rows = [(1, "0912406496", "600"), (2, "0987654321", ""), (3, "0911111111", "soon")]
    report = await AddNumbers(lists, "VN").execute(BLACKLIST, rows, 3600, lambda r, b, a: heard.append((b, a)))
    assert report.added == 2 and report.already == 1
    assert [(r.line, r.reason) for r in report.rejected] == [(3, "TTL 'soon' is not a whole number of seconds")]
    assert heard == [(("84912406496", "84987654321"), frozenset({"84912406496"}))]
    expiries = await lists.blacklist_expiries(["84912406496", "84987654321"])
    assert expiries == {"84912406496": 600, "84987654321": 3600}
