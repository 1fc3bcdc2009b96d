"""``Hold``: every way into and out of the block, checked against what the server received."""

from __future__ import annotations

import asyncio
import json
import logging
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from conftest import API_KEY, fake_in_thread, free_port, refusal, serve, until
from reserving import CANCEL, PURCHASE, RESERVE, UUID, Reserving, reservation_answer

from twochat_async import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    Hold,
    InvalidResponseError,
    NotFoundError,
    PaymentRequiredError,
    RateLimit,
    ServerError,
    TwoChatError,
    TwoChatSession,
    UnprocessableEntityError,
    _hold,
)
from twochat_async.models import Reservation
from twochat_async.testing import FakeTwoChat, Reply


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


async def test_a_purchase_that_waited_past_the_expiry_is_not_sent() -> None:
    """The expiry is checked again once the budget lets the purchase go: nothing is sent,
    the hold stays held, and its exit cancels the reservation."""
    # Reservations expire 1.5 s from now by the real clock (0.5-1.5 s: 2Chat writes whole
    # seconds), though the fake would sell them for an hour; at 30 a minute the purchase
    # waits about 2 s behind the reserve.
    lag = timedelta(hours=1) - timedelta(seconds=1.5)
    fake = FakeTwoChat(api_key=API_KEY, clock=lambda: datetime.now(timezone.utc) - lag)
    async with (
        fake as base_url,
        TwoChatSession(API_KEY, base_url=base_url, rate_limit=RateLimit(30)) as chat,
    ):

        async def flow() -> str:
            async with chat.hold("abc-123") as hold:
                assert not hold.reservation.is_expired()
                with pytest.raises(TwoChatError, match="expired") as info:
                    await hold.purchase()
                assert not isinstance(info.value, APIError)
                return hold.state

        assert await flow() == "held"
    assert fake.calls[PURCHASE] == 0
    assert fake.sold == {}
    assert len(deletes(fake)) == 1


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


async def test_task_cancelled_while_reserving_cancels_the_reservation_before_going_on() -> None:
    """Cancelled mid-reserve, the task waits for the answer and cancels it, then ends cancelled."""
    server = Reserving(answered=False)
    async with serve(server.handle) as base_url, TwoChatSession(API_KEY, base_url=base_url) as chat:
        hold = chat.hold("abc-123")

        async def use_hold() -> None:
            async with hold:
                pytest.fail("the block must not run: its task was cancelled first")

        task = asyncio.create_task(use_hold())
        await asyncio.wait_for(server.reserving.wait(), 10)
        task.cancel()  # as a framework cancels a handler
        await until(lambda: bool(_hold._releasing))
        assert not task.done()  # it waits for the reserve's answer
        server.answer.set()
        with pytest.raises(asyncio.CancelledError):
            await task
        # Both requests were made before the CancelledError reached this code.
        assert server.requests == [RESERVE, CANCEL]
        assert task.cancelled()
        assert hold.state == "released"


async def test_second_cancellation_while_reserving_stops_only_the_wait() -> None:
    """A second task.cancel() mid-reserve ends the task at once; the cancel still follows."""
    server = Reserving(answered=False)
    async with serve(server.handle) as base_url, TwoChatSession(API_KEY, base_url=base_url) as chat:

        async def use_hold() -> None:
            async with chat.hold("abc-123"):
                pytest.fail("the block must not run: its task was cancelled first")

        task = asyncio.create_task(use_hold())
        await asyncio.wait_for(server.reserving.wait(), 10)
        task.cancel()
        await until(lambda: bool(_hold._releasing))
        assert not task.done()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert server.requests == [RESERVE]
        server.answer.set()
        await releases_done()
    assert server.requests == [RESERVE, CANCEL]


def test_asyncio_run_ending_while_a_hold_enters_logs_one_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """asyncio.run() cutting off a hold's reserve logs one WARNING naming the group and number."""
    caplog.set_level(logging.WARNING, logger="twochat_async")
    with fake_in_thread() as fake:
        fake.script(Reply(fault="hang"))

        async def main() -> None:
            chat = TwoChatSession(API_KEY, base_url=fake.base_url, timeout=5)

            async def use_hold() -> None:
                async with chat.hold("abc-123", "+12135551240"):
                    pytest.fail("the block must not run")  # pragma: no cover

            entering = asyncio.create_task(use_hold())
            await fake.received(RESERVE)
            # Returning now: asyncio.run() cancels the hold's task and its request at once.
            assert not entering.done()

        asyncio.run(main())
        assert dict(fake.calls) == {RESERVE: 1}
    records = [r for r in caplog.records if r.name == "twochat_async"]
    assert [r.levelno for r in records] == [logging.WARNING]
    message = records[0].getMessage()
    assert "'abc-123'" in message
    assert "+12135551240" in message
    assert "cut off" in message
    assert "reservations()" in message
    assert API_KEY not in caplog.text


async def test_entering_coroutine_closed_unfinished_closes_cleanly() -> None:
    """Closing the entering coroutine mid-reserve (a task destroyed pending) raises nothing."""
    server = Reserving()
    async with serve(server.handle) as base_url, TwoChatSession(API_KEY, base_url=base_url) as chat:
        hold = chat.hold("abc-123")
        entering = hold.__aenter__()
        entering.send(None)  # runs up to its wait for the reserve
        (reserving,) = [
            task
            for task in asyncio.all_tasks()
            if getattr(task.get_coro(), "__qualname__", "") == "TwoChatSession.reserve"
        ]
        entering.close()  # what the garbage collector does to a coroutine left pending
        assert hold.state == "released"
        assert (await reserving).uuid == UUID  # the request runs on, its own task
    assert server.requests == [RESERVE]


@pytest.mark.parametrize(
    ("status", "body", "error"),
    [
        pytest.param(
            201,
            reservation_answer(created_at="yesterday"),
            InvalidResponseError,
            id="201-bad-created_at",
        ),
        pytest.param(
            201, reservation_answer(expires_at=None), InvalidResponseError, id="201-no-expires_at"
        ),
        pytest.param(
            201, reservation_answer(number=12135551240), InvalidResponseError, id="201-int-number"
        ),
        pytest.param(502, reservation_answer(), ServerError, id="502-with-the-reservation"),
    ],
)
async def test_reserve_of_unknown_outcome_cancels_the_uuid_its_answer_names(
    caplog: pytest.LogCaptureFixture, status: int, body: bytes, error: type[TwoChatError]
) -> None:
    """A reserve whose answer fails but names a uuid: that reservation is cancelled, then raised."""
    caplog.set_level(logging.WARNING, logger="twochat_async")
    server = Reserving(status, body)
    async with serve(server.handle) as base_url, TwoChatSession(API_KEY, base_url=base_url) as chat:
        hold = chat.hold("abc-123")

        async def use_hold() -> None:
            async with hold:
                pytest.fail("the block must not run")  # pragma: no cover

        with pytest.raises(error):
            await use_hold()
        assert server.requests == [RESERVE, CANCEL]
    assert hold.state == "released"
    assert [r for r in caplog.records if r.name == "twochat_async"] == []


@pytest.mark.parametrize(
    ("answer", "timeout", "error", "why"),
    [
        pytest.param(
            {
                "status": 502,
                "body": f"<h1>Bad Gateway</h1> key={API_KEY}".encode(),
                "content_type": "text/html",
            },
            5.0,
            ServerError,
            "ServerError",
            id="502-html",
        ),
        pytest.param(
            {"fault": "truncate"}, 5.0, APIConnectionError, "APIConnectionError", id="201-cut"
        ),
        pytest.param(
            {"fault": "drop"}, 5.0, APIConnectionError, "APIConnectionError", id="dropped"
        ),
        pytest.param({"answered": False}, 0.3, APITimeoutError, "APITimeoutError", id="timeout"),
        pytest.param(
            {"body": b'{"success": true, "data": {}}'},
            5.0,
            InvalidResponseError,
            "reservation_details",
            id="201-no-details",
        ),
        pytest.param(
            {"body": reservation_answer(uuid="../../purchase", created_at="yesterday")},
            5.0,
            InvalidResponseError,
            "InvalidResponseError",
            id="201-uuid-unfit-for-a-path",
        ),
    ],
)
async def test_reserve_of_unknown_outcome_without_a_uuid_logs_one_warning(
    caplog: pytest.LogCaptureFixture,
    answer: dict[str, Any],
    timeout: float,
    error: type[TwoChatError],
    why: str,
) -> None:
    """A reserve that may have reserved, without a usable uuid: raised, and one WARNING."""
    server = Reserving(**answer)
    caplog.set_level(logging.WARNING, logger="twochat_async")
    async with (
        serve(server.handle) as base_url,
        TwoChatSession(API_KEY, base_url=base_url, timeout=timeout, max_retries=0) as chat,
    ):
        hold = chat.hold("abc-123", "+12135551240")

        async def use_hold() -> None:
            async with hold:
                pytest.fail("the block must not run")  # pragma: no cover

        with pytest.raises(error):
            await use_hold()
        assert server.requests == [RESERVE]
    assert hold.state == "released"
    records = [r for r in caplog.records if r.name == "twochat_async"]
    assert [r.levelno for r in records] == [logging.WARNING]
    message = records[0].getMessage()
    assert "'abc-123'" in message
    assert "+12135551240" in message
    assert why in message
    assert "reservations()" in message
    assert API_KEY not in caplog.text


async def test_reserve_cancel_by_the_answers_uuid_that_fails_is_one_warning(
    fake: FakeTwoChat, chat: TwoChatSession, caplog: pytest.LogCaptureFixture
) -> None:
    """A uuid from an undecodable answer that 2Chat will not cancel: one WARNING, what to check."""
    caplog.set_level(logging.WARNING, logger="twochat_async")
    body = reservation_answer(created_at="yesterday")
    fake.script(Reply(201, body=body, handle=True))  # the fake reserves under its own uuid
    with pytest.raises(InvalidResponseError):
        async with chat.hold("abc-123"):
            pytest.fail("the block must not run")  # pragma: no cover
    assert deletes(fake) == [f"/open/numbers/reservations/{UUID}"]
    records = [r for r in caplog.records if r.name == "twochat_async"]
    assert [r.levelno for r in records] == [logging.WARNING]
    message = records[0].getMessage()
    assert f"Could not cancel the reservation {UUID} of +12135551240 of group 'abc-123'" in message
    assert "InvalidResponseError" in message
    assert "reservations()" in message
    assert "HTTP 404" in message
    assert API_KEY not in caplog.text


async def test_a_warning_shows_2chats_text_escaped_on_one_line(
    fake: FakeTwoChat, chat: TwoChatSession, caplog: pytest.LogCaptureFixture
) -> None:
    """A number 2Chat wrote with CR, LF and ESC is shown escaped: the WARNING is one line."""
    caplog.set_level(logging.WARNING, logger="twochat_async")
    number = "+12135551240\r\n2099-01-01 INFO twochat_async: all fine\x1b[2K"
    # The fake reserves under its own uuid, so the cancel of UUID on exit fails.
    fake.script(Reply(201, body=reservation_answer(number=number), handle=True))
    async with chat.hold("abc-123") as hold:
        assert hold.reservation.number == number
    records = [r for r in caplog.records if r.name == "twochat_async"]
    assert [r.levelno for r in records] == [logging.WARNING]
    message = records[0].getMessage()
    assert "+12135551240\\r\\n2099-01-01 INFO twochat_async: all fine\\x1b[2K" in message
    assert not any(char in message for char in "\r\n\x1b")


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param({"status": 422, "body": b'{"success": false}'}, id="422"),
        pytest.param({"status": 404, "body": b"not found", "content_type": "text/plain"}, id="404"),
        pytest.param({"status": 402}, id="402-with-a-reservation-body"),
    ],
)
async def test_reserve_refused_by_2chat_logs_nothing_and_cancels_nothing(
    caplog: pytest.LogCaptureFixture, answer: dict[str, Any]
) -> None:
    """A reserve 2Chat refused reserved nothing: its error is raised, nothing else is sent."""
    caplog.set_level(logging.DEBUG, logger="twochat_async")
    server = Reserving(**answer)
    async with serve(server.handle) as base_url, TwoChatSession(API_KEY, base_url=base_url) as chat:
        with pytest.raises(APIError):
            async with chat.hold("abc-123"):
                pytest.fail("the block must not run")  # pragma: no cover
    assert server.requests == [RESERVE]
    assert [r for r in caplog.records if r.name == "twochat_async"] == []


async def test_reserve_never_sent_logs_nothing(caplog: pytest.LogCaptureFixture) -> None:
    """A reserve that could not connect reserved nothing: APIConnectionError, nothing logged."""
    caplog.set_level(logging.DEBUG, logger="twochat_async")
    base_url = f"http://127.0.0.1:{free_port()}"
    async with TwoChatSession(API_KEY, base_url=base_url, max_retries=0) as chat:
        with pytest.raises(APIConnectionError) as info:
            async with chat.hold("abc-123"):
                pytest.fail("the block must not run")  # pragma: no cover
    assert not info.value.request_sent
    assert [r for r in caplog.records if r.name == "twochat_async"] == []


@pytest.mark.parametrize("written", ["12135551240", "+1 213 555 1240", "+12135551240"])
async def test_hold_buys_the_number_as_2chat_wrote_it(written: str) -> None:
    """hold.purchase() sends back the reserved number exactly as 2Chat wrote it, E.164 or not."""
    server = Reserving(body=reservation_answer(number=written))
    async with (
        serve(server.handle) as base_url,
        TwoChatSession(API_KEY, base_url=base_url) as chat,
        chat.hold("abc-123") as hold,
    ):
        bought = await hold.purchase()
    assert server.purchases == [{"group_id": "abc-123", "number": written}]
    assert (bought.group_id, bought.number) == ("abc-123", written)
    assert hold.state == "purchased"
    assert server.requests == [RESERVE, PURCHASE]


@pytest.mark.parametrize("number", ["+1213555\x1b[2J1240", "+12135551240\n", "\t", " "])
async def test_purchase_refused_before_sending_leaves_the_hold_held_and_exit_cancels(
    caplog: pytest.LogCaptureFixture, number: str
) -> None:
    """A reserved number with control characters is a ValueError; nothing sent, exit cancels."""
    caplog.set_level(logging.WARNING, logger="twochat_async")
    server = Reserving(body=reservation_answer(number=number))
    async with serve(server.handle) as base_url, TwoChatSession(API_KEY, base_url=base_url) as chat:
        async with chat.hold("abc-123") as hold:
            assert hold.reservation.number == number
            with pytest.raises(ValueError, match=r"control characters|non-empty"):
                await hold.purchase()
            states = [hold.state]
        states.append(hold.state)
        assert states == ["held", "released"]
        assert server.requests == [RESERVE, CANCEL]
    assert server.purchases == []
    assert [r for r in caplog.records if r.name == "twochat_async"] == []


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
