"""The pool's slots: taken at once while free, else handed over in order, never lost."""

from __future__ import annotations

import asyncio

import pytest

from twochat_async._transport import _Slots


def test_free_slots_are_taken_without_waiting() -> None:
    """take() succeeds as many times as there are slots, then says none is free."""
    slots = _Slots(2)
    assert [slots.take(), slots.take(), slots.take()] == [True, True, False]
    slots.release()
    assert slots.take() is True


async def test_a_released_slot_goes_to_the_oldest_waiter() -> None:
    """Waiters get slots first come, first served; take() finds none free meanwhile."""
    slots = _Slots(1)
    assert slots.take()
    served: list[int] = []

    async def waiter(index: int) -> None:
        await slots.wait()
        served.append(index)

    tasks = [asyncio.create_task(waiter(i)) for i in range(3)]
    await asyncio.sleep(0)
    for _ in range(3):
        slots.release()
        assert slots.take() is False  # handed over, not freed
        await asyncio.sleep(0)
    await asyncio.gather(*tasks)
    slots.release()
    assert (served, slots.take()) == ([0, 1, 2], True)


async def test_a_cancelled_waiter_is_skipped_and_its_slot_not_lost() -> None:
    """A waiter cancelled before or after being handed a slot passes the slot on."""
    slots = _Slots(1)
    assert slots.take()
    early = asyncio.create_task(slots.wait())
    late = asyncio.create_task(slots.wait())
    last = asyncio.create_task(slots.wait())
    await asyncio.sleep(0)
    early.cancel()  # cancelled while queued
    await asyncio.sleep(0)
    slots.release()  # skips `early`, hands the slot to `late`...
    late.cancel()  # ...which is cancelled before it runs: it hands the slot on to `last`
    with pytest.raises(asyncio.CancelledError):
        await late
    await last
    slots.release()
    assert slots.take() is True
    assert slots.take() is False
