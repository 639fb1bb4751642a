"""The relay's stray check: what the outbox holds and the relay does not know of, twice in a row."""
from __future__ import annotations

from callflow.adapters.clock import SystemClock
from callflow.adapters.delivery.pacing import StrayCheck
from callflow.adapters.in_memory_outbox import InMemoryOutbox
from callflow.domain.envelope import EventEnvelope


def envelope(n: int) -> EventEnvelope:
    return EventEnvelope(routing_key="call.events.c", body=b"{}", message_id=f"m{n}")


async def stored(count: int) -> InMemoryOutbox:
    outbox = InMemoryOutbox(SystemClock())
    for n in range(count):
        await outbox.put(envelope(n))
    return outbox


async def test_an_entry_unaccounted_at_two_checks_in_a_row_is_a_stray():
    """Seen once (it may be on its way to the relay) is not enough; the second check finds it."""
    outbox, known = await stored(3), {1, 2}
    check = StrayCheck(period_s=0.0)
    assert not await check.finds_strays(outbox, lambda: known)
    assert await check.finds_strays(outbox, lambda: known)


async def test_an_entry_offered_meanwhile_is_no_stray():
    """Unaccounted at one check, offered or in flight at the next: nothing to walk for."""
    outbox, known = await stored(3), {1, 2}
    check = StrayCheck(period_s=0.0)
    assert not await check.finds_strays(outbox, lambda: known)
    known.add(3)
    assert not await check.finds_strays(outbox, lambda: known)
    assert not await check.finds_strays(outbox, lambda: known)


async def test_checks_are_paced_and_an_empty_outbox_is_not_read():
    """Within ``period_s`` of a check nothing is read; an empty outbox is never read."""
    outbox = await stored(1)
    reads: set[int] = set()
    pending = outbox.pending

    async def counted(after_id: int = 0, limit: int = 500):
        reads.add(len(reads))
        return await pending(after_id, limit)

    outbox.pending = counted  # type: ignore[method-assign]
    check = StrayCheck(period_s=60.0)
    assert not await check.finds_strays(outbox, set)
    assert not await check.finds_strays(outbox, set)  # a stray, but not a minute later yet
    assert len(reads) == 1
    empty = InMemoryOutbox(SystemClock())
    empty.pending = counted  # type: ignore[method-assign]
    assert not await StrayCheck(period_s=0.0).finds_strays(empty, set)
    assert len(reads) == 1
