"""``TwoChatSession.hold()``: every way out of the block, checked against the fake's state."""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import datetime, timedelta, timezone

import pytest
from conftest import API_KEY

from twochat_async import (
    APIError,
    Hold,
    NotFoundError,
    ServerError,
    TwoChatError,
    TwoChatSession,
)
from twochat_async.models import Reservation
from twochat_async.testing import FakeTwoChat, Reply

PURCHASE = "POST /open/numbers/purchase"
RESERVE = "POST /open/numbers/reservations"


def deletes(fake: FakeTwoChat) -> list[str]:
    """Return the paths of every DELETE the fake received, in order."""
    return [r["path"] for r in fake.requests if r["method"] == "DELETE"]


def error_reply(status: int, message: str) -> Reply:
    """A scripted answer in 2Chat's error envelope."""
    return Reply(status, json={"success": False, "error": True, "error_message": message})


async def test_normal_exit_without_purchase_cancels_once(
    fake: FakeTwoChat, chat: TwoChatSession
) -> None:
    """Leaving the block normally without purchase sends one DELETE for the held uuid."""
    async with chat.hold("abc-123") as hold:
        reservation = hold.reservation
        assert [r.uuid for r in fake.active_reservations()] == [reservation.uuid]
        assert "+12135551234" not in fake.available("abc-123")
    assert deletes(fake) == [f"/open/numbers/reservations/{reservation.uuid}"]
    assert fake.active_reservations() == []
    assert fake.reservations == {}
    assert fake.sold == {}
    assert "+12135551234" in fake.available("abc-123")
    assert hold.purchased is None


async def test_hold_yields_the_reservation_of_the_held_group(
    fake: FakeTwoChat, chat: TwoChatSession
) -> None:
    """Entering reserves exactly the number asked for, as a Reservation of that group."""
    async with chat.hold("abc-123", "+12135551240") as hold:
        assert isinstance(hold, Hold)
        assert isinstance(hold.reservation, Reservation)
        assert hold.reservation.number == "+12135551240"
        assert hold.reservation.group_id == "abc-123"
        assert [r.number for r in fake.active_reservations()] == ["+12135551240"]
    assert fake.active_reservations() == []


async def test_exception_in_block_cancels_and_propagates_unchanged(
    fake: FakeTwoChat, chat: TwoChatSession
) -> None:
    """An exception in the block cancels the reservation and comes out as the same object."""
    original = ValueError("the user said no")

    async def flow() -> None:
        async with chat.hold("abc-123"):
            raise original

    with pytest.raises(ValueError, match="the user said no") as info:
        await flow()
    assert info.value is original
    assert info.value.__context__ is None
    assert len(deletes(fake)) == 1
    assert fake.active_reservations() == []
    assert fake.sold == {}


async def test_task_cancelled_inside_block_still_sends_the_cancel(
    fake: FakeTwoChat, chat: TwoChatSession
) -> None:
    """Cancelling the task inside the block still sends the DELETE; the task ends cancelled."""
    entered = asyncio.Event()

    async def flow() -> None:
        async with chat.hold("abc-123"):
            entered.set()
            await asyncio.sleep(30)

    task = asyncio.create_task(flow())
    await asyncio.wait_for(entered.wait(), 5)
    assert len(fake.active_reservations()) == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert task.cancelled()
    assert len(deletes(fake)) == 1
    assert fake.active_reservations() == []


async def test_second_cancellation_does_not_stop_the_release(fake: FakeTwoChat) -> None:
    """A second task.cancel() during the release stops only the wait; the DELETE still goes out."""
    entered = asyncio.Event()
    # One request a second: the reserve takes this second's slot, so the release's DELETE
    # waits about a second for its own, which leaves room for a second cancellation.
    async with TwoChatSession(API_KEY, base_url=fake.base_url, rate_limit=60) as chat:

        async def flow() -> None:
            async with chat.hold("abc-123"):
                entered.set()
                await asyncio.sleep(30)

        task = asyncio.create_task(flow())
        await asyncio.wait_for(entered.wait(), 5)
        task.cancel()
        await asyncio.sleep(0.1)  # the release is waiting for its slot now
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert deletes(fake) == []
        for _ in range(60):
            if deletes(fake) and not fake.active_reservations():
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.1)  # let the release read its answer before the session closes
    assert len(deletes(fake)) == 1
    assert fake.active_reservations() == []


@pytest.mark.parametrize(
    ("group_id", "number"), [("abc-123", None), ("nyc-212", "+12125552003"), ("tf-800", None)]
)
async def test_purchase_buys_exactly_the_held_number_and_exit_does_nothing(
    fake: FakeTwoChat, chat: TwoChatSession, group_id: str, number: str | None
) -> None:
    """purchase() buys the held number from the held group; leaving then sends no DELETE."""
    async with chat.hold(group_id, number) as hold:
        held = hold.reservation.number
        bought = await hold.purchase()
        assert hold.purchased is bought
    assert fake.sold == {held: group_id}
    assert (bought.group_id, bought.number) == (group_id, held)
    assert deletes(fake) == []
    assert fake.calls[PURCHASE] == 1
    purchase = next(r for r in fake.requests if r["path"] == "/open/numbers/purchase")
    assert json.loads(purchase["body"]) == {"group_id": group_id, "number": held}
    assert fake.active_reservations() == []
    assert held not in fake.available(group_id)


async def test_purchase_twice_sends_one_purchase(fake: FakeTwoChat, chat: TwoChatSession) -> None:
    """A second purchase() returns the same Purchase without another request."""
    async with chat.hold("abc-123") as hold:
        first = await hold.purchase()
        second = await hold.purchase()
    assert second is first
    assert fake.calls[PURCHASE] == 1
    assert len(fake.sold) == 1
    assert deletes(fake) == []


async def test_exception_after_purchase_sends_no_cancel(
    fake: FakeTwoChat, chat: TwoChatSession
) -> None:
    """An exception raised after a successful purchase propagates and cancels nothing."""

    async def flow() -> None:
        async with chat.hold("abc-123") as hold:
            await hold.purchase()
            raise RuntimeError("after the purchase")

    with pytest.raises(RuntimeError, match="after the purchase"):
        await flow()
    assert deletes(fake) == []
    assert fake.sold == {"+12135551234": "abc-123"}


async def test_failed_purchase_still_cancels_on_exit(
    fake: FakeTwoChat, chat: TwoChatSession
) -> None:
    """A purchase that fails leaves the hold unpurchased: its error propagates and exit cancels."""

    async def flow() -> None:
        async with chat.hold("abc-123") as hold:
            fake.script(error_reply(503, "try later"))
            await hold.purchase()

    with pytest.raises(ServerError, match="try later"):
        await flow()
    assert fake.sold == {}
    assert len(deletes(fake)) == 1
    assert fake.active_reservations() == []


async def test_expired_hold_refuses_to_purchase_without_a_request(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """purchase() past a tiny reservation_ttl raises TwoChatError 'expired', sending nothing."""
    caplog.set_level(logging.WARNING, logger="twochat_async")
    fake = FakeTwoChat(api_key=API_KEY, reservation_ttl=timedelta(milliseconds=50))
    async with fake as base_url, TwoChatSession(API_KEY, base_url=base_url, timeout=5) as chat:

        async def flow() -> None:
            async with chat.hold("abc-123") as hold:
                await asyncio.sleep(0.15)
                assert hold.reservation.is_expired()
                await hold.purchase()

        with pytest.raises(TwoChatError, match="expired") as info:
            await flow()
    assert not isinstance(info.value, APIError)
    assert "+12135551234" in str(info.value)
    assert fake.calls[PURCHASE] == 0
    assert fake.sold == {}
    assert len(deletes(fake)) == 1
    assert fake.active_reservations() == []
    # The fake had already let the reservation go, so the cancel on exit is refused: logged.
    assert [r.name for r in caplog.records] == ["twochat_async"]


async def test_expired_hold_checks_its_own_expiry_before_the_network() -> None:
    """A hold expired by the real clock is not bought, though the fake would still sell it."""
    # The fake lives two hours in the past: its one-hour reservations are active for it,
    # yet already expired by the clock Reservation.is_expired() uses.
    fake = FakeTwoChat(
        api_key=API_KEY, clock=lambda: datetime.now(timezone.utc) - timedelta(hours=2)
    )
    async with fake as base_url, TwoChatSession(API_KEY, base_url=base_url, timeout=5) as chat:

        async def flow() -> None:
            async with chat.hold("abc-123") as hold:
                assert len(fake.active_reservations()) == 1
                await hold.purchase()

        with pytest.raises(TwoChatError, match="expired"):
            await flow()
    assert fake.calls[PURCHASE] == 0
    assert fake.sold == {}
    assert len(deletes(fake)) == 1
    assert fake.active_reservations() == []


async def test_failed_cancel_is_logged_without_the_key_and_does_not_replace_the_error(
    fake: FakeTwoChat, chat: TwoChatSession, caplog: pytest.LogCaptureFixture
) -> None:
    """A 500 on the DELETE is logged at WARNING without the key; the block's ValueError wins."""
    caplog.set_level(logging.WARNING, logger="twochat_async")

    async def flow() -> None:
        async with chat.hold("abc-123") as hold:
            fake.script(error_reply(500, f"database down for key {API_KEY}"))
            raise ValueError(hold.reservation.uuid)

    with pytest.raises(ValueError, match="-") as info:
        await flow()
    uuid = str(info.value)
    assert info.value.__context__ is None
    assert deletes(fake) == [f"/open/numbers/reservations/{uuid}"]
    records = [r for r in caplog.records if r.name == "twochat_async"]
    assert len(records) == 1
    assert records[0].levelno == logging.WARNING
    message = records[0].getMessage()
    assert uuid in message
    assert "+12135551234" in message
    assert "database down" in message
    assert API_KEY not in caplog.text
    assert API_KEY not in message
    # The scripted 500 stood in for the real cancel, so the fake still holds the number.
    assert [r.uuid for r in fake.active_reservations()] == [uuid]


async def test_failed_cancel_on_normal_exit_is_logged_not_raised(
    fake: FakeTwoChat, chat: TwoChatSession, caplog: pytest.LogCaptureFixture
) -> None:
    """A failing DELETE after a normal exit is logged at WARNING and the block ends quietly."""
    caplog.set_level(logging.WARNING, logger="twochat_async")
    async with chat.hold("abc-123") as hold:
        fake.script(error_reply(500, "internal error"))
    assert len(deletes(fake)) == 1
    (record,) = [r for r in caplog.records if r.name == "twochat_async"]
    assert record.levelno == logging.WARNING
    assert hold.reservation.uuid in record.getMessage()
    assert API_KEY not in caplog.text


async def test_hanging_cancel_is_bounded_by_the_session_timeout(
    fake: FakeTwoChat, caplog: pytest.LogCaptureFixture
) -> None:
    """A DELETE that never answers is cut off by the session timeout and logged."""
    caplog.set_level(logging.WARNING, logger="twochat_async")
    async with TwoChatSession(API_KEY, base_url=fake.base_url, timeout=0.3, max_retries=0) as chat:

        async def flow() -> None:
            async with chat.hold("abc-123"):
                fake.script(Reply(fault="hang"))

        await asyncio.wait_for(flow(), 5)
    assert len(deletes(fake)) == 1
    (record,) = [r for r in caplog.records if r.name == "twochat_async"]
    assert record.levelno == logging.WARNING
    assert "did not answer" in record.getMessage()


async def test_reservation_before_entering_is_an_error(
    fake: FakeTwoChat, chat: TwoChatSession
) -> None:
    """hold.reservation and hold.purchase() before the block is entered raise TwoChatError."""
    hold = chat.hold("abc-123")
    with pytest.raises(TwoChatError, match="async with"):
        _ = hold.reservation
    with pytest.raises(TwoChatError, match="async with"):
        await hold.purchase()
    assert hold.purchased is None
    assert fake.requests == []


@pytest.mark.parametrize(
    ("group_id", "number", "match"),
    [
        ("", None, "group_id"),
        ("   ", None, "group_id"),
        (None, None, "group_id"),
        ("abc-123", "12135551234", "E.164"),
        ("abc-123", "+0123", "E.164"),
        ("abc-123", 12135551234, "E.164"),
    ],
)
async def test_invalid_arguments_raise_value_error_before_any_request(
    fake: FakeTwoChat, chat: TwoChatSession, group_id: object, number: object, match: str
) -> None:
    """hold() with a bad group or number raises ValueError at the call, sending nothing."""
    with pytest.raises(ValueError, match=match):
        chat.hold(group_id, number)  # type: ignore[arg-type]
    assert fake.requests == []


async def test_failing_reserve_on_enter_raises_and_sends_no_cancel(
    fake: FakeTwoChat, chat: TwoChatSession
) -> None:
    """An unknown group fails on entering with NotFoundError; the body never runs, no DELETE."""
    ran = False

    async def flow() -> None:
        nonlocal ran
        async with chat.hold("no-such-group"):
            ran = True  # pragma: no cover

    with pytest.raises(NotFoundError, match="no-such-group"):
        await flow()
    assert not ran
    assert dict(fake.calls) == {RESERVE: 1}
    assert deletes(fake) == []
    assert fake.active_reservations() == []


async def test_cancelled_while_reserving_releases_the_late_reservation() -> None:
    """A task cancelled while the reserve is in flight still cancels what 2Chat reserved."""
    fake = FakeTwoChat(API_KEY, latency=0.3)
    async with fake as base_url, TwoChatSession(API_KEY, base_url=base_url, timeout=5) as chat:

        async def use_hold() -> None:
            async with chat.hold("abc-123"):
                pytest.fail("the block must not run: its task was cancelled first")

        task = asyncio.create_task(use_hold())
        await asyncio.sleep(0.1)  # the reserve request has reached the fake by now
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        for _ in range(60):  # the reserve is answered at 0.3 s, the release 0.3 s later
            if deletes(fake) and not fake.reservations:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.2)  # let the release read its answer before the session closes
    assert fake.calls[RESERVE] == 1
    assert len(deletes(fake)) == 1
    assert fake.reservations == {}
