"""``Hold``: every way out of the block, checked against the fake's state."""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import datetime, timedelta, timezone

import pytest
from conftest import API_KEY, refusal, until

from twochat_async import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    Hold,
    InvalidResponseError,
    NotFoundError,
    PaymentRequiredError,
    ServerError,
    TwoChatError,
    TwoChatSession,
    UnprocessableEntityError,
    _hold,
)
from twochat_async.models import Reservation
from twochat_async.testing import FakeTwoChat, Reply

PURCHASE = "POST /open/numbers/purchase"
RESERVE = "POST /open/numbers/reservations"


async def releases_done() -> None:
    """Wait until every release running in the background has read its answer.

    A release outlives a cancelled block's task; the session must not close under it.
    """
    await asyncio.wait_for(asyncio.gather(*_hold._releasing), 10)


def deletes(fake: FakeTwoChat) -> list[str]:
    """Return the paths of every DELETE the fake received, in order."""
    return [r["path"] for r in fake.requests if r["method"] == "DELETE"]


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
        hold = chat.hold("abc-123")

        async def flow() -> None:
            async with hold:
                entered.set()
                await asyncio.sleep(30)

        task = asyncio.create_task(flow())
        await asyncio.wait_for(entered.wait(), 5)
        task.cancel()
        await until(lambda: hold.state == "released")  # the block waits for its release
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert deletes(fake) == []
        await releases_done()
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


async def test_refused_purchase_goes_back_to_held_and_exit_cancels(
    fake: FakeTwoChat, chat: TwoChatSession
) -> None:
    """A purchase 2Chat refuses leaves the hold held: its error propagates and exit cancels."""
    hold = chat.hold("abc-123")

    async def flow() -> None:
        async with hold:
            fake.script(refusal(422, "number not available"))
            try:
                await hold.purchase()
            finally:
                assert hold.state == "held"

    with pytest.raises(UnprocessableEntityError, match="number not available"):
        await flow()
    assert hold.state == "released"
    assert fake.calls[PURCHASE] == 1
    assert fake.sold == {}
    assert deletes(fake) == [f"/open/numbers/reservations/{hold.reservation.uuid}"]
    assert fake.active_reservations() == []


async def test_purchase_may_be_tried_again_after_a_refusal(
    fake: FakeTwoChat, chat: TwoChatSession
) -> None:
    """After a refused purchase, purchase() sends a new request, and a success is kept."""
    async with chat.hold("abc-123") as hold:
        fake.script(refusal(402, "credits exhausted"))
        with pytest.raises(PaymentRequiredError):
            await hold.purchase()
        bought = await hold.purchase()
        assert hold.state == "purchased"
    assert hold.purchased is bought
    assert fake.calls[PURCHASE] == 2
    assert fake.sold == {bought.number: "abc-123"}
    assert deletes(fake) == []


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
            fake.script(refusal(500, f"database down for key {API_KEY}"))
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
    # The scripted 500 stood in for the real cancel, so the fake still holds the number.
    assert [r.uuid for r in fake.active_reservations()] == [uuid]


async def test_failed_cancel_on_normal_exit_is_logged_not_raised(
    fake: FakeTwoChat, chat: TwoChatSession, caplog: pytest.LogCaptureFixture
) -> None:
    """A failing DELETE after a normal exit is logged at WARNING and the block ends quietly."""
    caplog.set_level(logging.WARNING, logger="twochat_async")
    async with chat.hold("abc-123") as hold:
        fake.script(refusal(500, "internal error"))
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
    assert hold.state == "new"
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
        await fake.received(RESERVE)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert fake.reservations == {}  # not answered yet
        await releases_done()
    assert fake.calls[RESERVE] == 1
    assert len(deletes(fake)) == 1
    assert fake.reservations == {}


async def test_purchase_on_a_closed_session_leaves_the_hold_held(
    fake: FakeTwoChat, caplog: pytest.LogCaptureFixture
) -> None:
    """A purchase the closed session refuses to send is known not to buy: the hold stays held."""
    caplog.set_level(logging.WARNING, logger="twochat_async")
    chat = TwoChatSession(API_KEY, base_url=fake.base_url, timeout=5)
    async with chat.hold("abc-123") as hold:
        await chat.close()
        with pytest.raises(TwoChatError, match="closed"):
            await hold.purchase()
        assert hold.state == "held"
    assert hold.state == "released"
    assert fake.calls[PURCHASE] == 0
    # The release cannot go out either: it is logged as a failed cancel, not as a doubt.
    (record,) = [r for r in caplog.records if r.name == "twochat_async"]
    assert "Could not cancel the reservation" in record.getMessage()
    assert "unknown" not in record.getMessage()


async def test_purchase_after_the_block_raises_without_a_request(
    fake: FakeTwoChat, chat: TwoChatSession
) -> None:
    """purchase() on a hold whose block was left raises TwoChatError and buys nothing."""
    async with chat.hold("abc-123") as hold:
        pass
    assert hold.state == "released"
    with pytest.raises(TwoChatError, match="released") as info:
        await hold.purchase()
    assert not isinstance(info.value, (APIError, APIConnectionError))
    assert hold.reservation.number in str(info.value)
    assert fake.calls[PURCHASE] == 0
    assert fake.sold == {}
    assert len(deletes(fake)) == 1
    assert hold.purchased is None


async def test_a_hold_is_entered_once(fake: FakeTwoChat, chat: TwoChatSession) -> None:
    """Entering a hold again, inside or after its block, raises TwoChatError, reserving nothing."""
    hold = chat.hold("abc-123")
    async with hold:
        with pytest.raises(TwoChatError, match="entered once"):
            async with hold:
                pytest.fail("the block must not run twice")  # pragma: no cover
        assert hold.state == "held"
    with pytest.raises(TwoChatError, match="entered once"):
        async with hold:
            pytest.fail("the block must not run twice")  # pragma: no cover
    assert hold.state == "released"
    assert fake.calls[RESERVE] == 1
    assert len(deletes(fake)) == 1


async def test_concurrent_purchases_share_one_request(
    fake: FakeTwoChat, chat: TwoChatSession
) -> None:
    """Two concurrent purchase() calls send one POST and both get the same Purchase."""
    async with chat.hold("abc-123") as hold:
        first, second = await asyncio.gather(hold.purchase(), hold.purchase())
    assert first is second
    assert hold.purchased is first
    assert fake.calls[PURCHASE] == 1
    assert fake.sold == {first.number: "abc-123"}
    assert deletes(fake) == []


async def test_concurrent_purchases_share_one_failure(
    fake: FakeTwoChat, chat: TwoChatSession
) -> None:
    """When the shared POST is refused, every concurrent caller gets the same exception."""
    async with chat.hold("abc-123") as hold:
        fake.script(refusal(422, "number not available"))
        first, second = await asyncio.gather(
            hold.purchase(), hold.purchase(), return_exceptions=True
        )
        assert hold.state == "held"
    assert isinstance(first, UnprocessableEntityError)
    assert second is first
    assert fake.calls[PURCHASE] == 1
    assert fake.sold == {}
    assert len(deletes(fake)) == 1
    assert fake.active_reservations() == []


async def test_a_cancelled_caller_does_not_cancel_the_purchase_for_the_others(
    fake: FakeTwoChat, chat: TwoChatSession
) -> None:
    """Cancelling one waiting purchase() call leaves the shared request to finish for the rest."""
    async with chat.hold("abc-123") as hold:
        fake.latency = 0.3
        impatient = asyncio.create_task(hold.purchase())
        patient = asyncio.create_task(hold.purchase())
        await fake.received(PURCHASE)
        assert hold.state == "purchasing"
        impatient.cancel()
        bought = await asyncio.wait_for(patient, 5)
    with pytest.raises(asyncio.CancelledError):
        await impatient
    assert hold.state == "purchased"
    assert hold.purchased is bought
    assert fake.calls[PURCHASE] == 1
    assert fake.sold == {bought.number: "abc-123"}
    assert deletes(fake) == []


@pytest.mark.parametrize(
    ("reply", "error", "bought"),
    [
        pytest.param(Reply(handle=True, fault="drop"), APIConnectionError, True, id="dropped"),
        pytest.param(Reply(fault="hang"), APITimeoutError, False, id="timeout"),
        pytest.param(refusal(503, "try later"), ServerError, False, id="server-error"),
        pytest.param(
            Reply(201, body=b"{", handle=True), InvalidResponseError, True, id="undecodable"
        ),
    ],
)
async def test_purchase_of_unknown_outcome_is_neither_resent_nor_released(
    fake: FakeTwoChat,
    caplog: pytest.LogCaptureFixture,
    reply: Reply,
    error: type[TwoChatError],
    bought: bool,
) -> None:
    """A purchase 2Chat may have made is not re-sent nor cancelled; a warning says what to check."""
    caplog.set_level(logging.WARNING, logger="twochat_async")
    async with TwoChatSession(API_KEY, base_url=fake.base_url, timeout=1, max_retries=0) as chat:
        async with chat.hold("abc-123") as hold:
            reservation = hold.reservation
            fake.script(reply)
            with pytest.raises(error) as info:
                await hold.purchase()
            assert getattr(info.value, "request_sent", True)
            assert hold.state == "unknown"
            with pytest.raises(TwoChatError, match="unknown") as again:
                await hold.purchase()
            assert type(again.value) is TwoChatError
        assert hold.state == "unknown"
        with pytest.raises(TwoChatError, match="unknown"):
            await hold.purchase()
    assert fake.calls[PURCHASE] == 1
    assert deletes(fake) == []
    assert hold.purchased is None
    assert (reservation.number in fake.sold) is bought
    assert [r.uuid for r in fake.active_reservations()] == ([] if bought else [reservation.uuid])
    (record,) = [r for r in caplog.records if r.name == "twochat_async"]
    assert record.levelno == logging.WARNING
    message = record.getMessage()
    assert "unknown" in message
    assert error.__name__ in message
    assert reservation.number in message
    assert reservation.uuid in message
    assert reservation.expires_at.isoformat() in message
    assert "reservations()" in message
    assert "Could not cancel" not in caplog.text
    assert API_KEY not in caplog.text


async def test_task_cancelled_while_purchasing_waits_and_keeps_the_purchase(
    fake: FakeTwoChat, chat: TwoChatSession, caplog: pytest.LogCaptureFixture
) -> None:
    """Cancelled mid-purchase, the block waits for the POST: the number is bought, not released."""
    caplog.set_level(logging.WARNING, logger="twochat_async")
    hold = chat.hold("abc-123")

    async def flow() -> None:
        async with hold:
            fake.latency = 0.3
            await hold.purchase()

    task = asyncio.create_task(flow())
    await fake.received(PURCHASE)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert hold.state == "purchased"
    assert hold.purchased is not None
    assert fake.sold == {hold.reservation.number: "abc-123"}
    assert fake.calls[PURCHASE] == 1
    assert deletes(fake) == []
    (record,) = [r for r in caplog.records if r.name == "twochat_async"]
    assert record.levelno == logging.WARNING
    message = record.getMessage()
    assert "went through" in message
    assert "CancelledError" in message
    assert hold.reservation.number in message
    assert "Could not cancel" not in caplog.text


async def test_task_cancelled_while_purchasing_with_unknown_outcome_is_not_released(
    fake: FakeTwoChat, caplog: pytest.LogCaptureFixture
) -> None:
    """Cancelled mid-purchase, a POST that times out leaves the reservation and logs the doubt."""
    caplog.set_level(logging.WARNING, logger="twochat_async")
    async with TwoChatSession(API_KEY, base_url=fake.base_url, timeout=1, max_retries=0) as chat:
        hold = chat.hold("abc-123")

        async def flow() -> None:
            async with hold:
                fake.script(Reply(fault="hang"))
                await hold.purchase()

        task = asyncio.create_task(flow())
        await fake.received(PURCHASE)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert hold.state == "unknown"
        with pytest.raises(TwoChatError, match="unknown"):
            await hold.purchase()
    assert fake.calls[PURCHASE] == 1
    assert deletes(fake) == []
    assert [r.uuid for r in fake.active_reservations()] == [hold.reservation.uuid]
    (record,) = [r for r in caplog.records if r.name == "twochat_async"]
    message = record.getMessage()
    assert "unknown" in message
    assert "APITimeoutError" in message
    assert "reservations()" in message
    assert "Could not cancel" not in caplog.text


async def test_task_cancelled_while_purchasing_releases_after_a_refusal(
    fake: FakeTwoChat, chat: TwoChatSession, caplog: pytest.LogCaptureFixture
) -> None:
    """Cancelled mid-purchase, a POST that 2Chat refuses is followed by the cancel on exit."""
    caplog.set_level(logging.WARNING, logger="twochat_async")
    hold = chat.hold("abc-123")

    async def flow() -> None:
        async with hold:
            fake.script(Reply(422, delay=0.3))
            await hold.purchase()

    task = asyncio.create_task(flow())
    await fake.received(PURCHASE)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert hold.state == "released"
    with pytest.raises(TwoChatError, match="released"):
        await hold.purchase()
    assert fake.calls[PURCHASE] == 1
    assert fake.sold == {}
    assert deletes(fake) == [f"/open/numbers/reservations/{hold.reservation.uuid}"]
    assert fake.active_reservations() == []
    assert [r for r in caplog.records if r.name == "twochat_async"] == []


async def test_second_cancellation_while_purchasing_stops_only_the_wait(
    fake: FakeTwoChat, chat: TwoChatSession
) -> None:
    """A second cancel ends the block's wait for the POST; its refusal still leads to the cancel."""
    hold = chat.hold("abc-123")

    async def flow() -> None:
        async with hold:
            fake.script(Reply(422, delay=0.5))
            await hold.purchase()

    task = asyncio.create_task(flow())
    await fake.received(PURCHASE)
    task.cancel()
    await until(lambda: bool(_hold._releasing))  # the block waits for the purchase now
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert hold.state == "purchasing"
    assert deletes(fake) == []
    await releases_done()
    assert hold.state == "released"
    assert fake.calls[PURCHASE] == 1
    assert len(deletes(fake)) == 1
    assert fake.active_reservations() == []


async def test_repr_names_group_number_state_and_reservation(
    fake: FakeTwoChat, chat: TwoChatSession
) -> None:
    """repr(hold) shows the group, number, state and reservation uuid, never the API key."""
    hold = chat.hold("abc-123", "+12135551240")
    assert repr(hold) == (
        "<Hold group_id='abc-123' number='+12135551240' state='new' reservation=None>"
    )
    async with hold:
        uuid = hold.reservation.uuid
        assert repr(hold) == (
            f"<Hold group_id='abc-123' number='+12135551240' state='held' reservation='{uuid}'>"
        )
        await hold.purchase()
    assert repr(hold) == (
        f"<Hold group_id='abc-123' number='+12135551240' state='purchased' reservation='{uuid}'>"
    )
    assert API_KEY not in repr(hold)
    anyone = chat.hold("abc-123")
    assert "number=None" in repr(anyone)
    async with anyone:
        assert f"number={anyone.reservation.number!r}" in repr(anyone)
    assert "state='released'" in repr(anyone)
