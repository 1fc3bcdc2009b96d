"""``Hold``: a reservation that lives exactly as long as an ``async with`` block."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Coroutine
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal

from . import _wire
from .errors import APIConnectionError, APIError, ServerError, TwoChatError
from .models import Purchase, Reservation

if TYPE_CHECKING:
    from ._session import TwoChatSession

# The public names of this module; the package exports them (see __init__.py).
__all__ = ["Hold"]

logger = logging.getLogger("twochat_async")

HoldState = Literal["new", "reserving", "held", "purchasing", "purchased", "unknown", "released"]

# Clean-ups (a release, the wait for a purchase or a reservation in flight) that a block's
# task waits for; kept so they aren't garbage-collected if a second cancellation stops the
# wait before they finish.
_releasing: set[asyncio.Future[None]] = set()

#: What a uuid read from an answer the SDK could not decode must look like before it goes
#: into a cancel's path (and a log line): letters, digits, ``-`` and ``_``.
_UUID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}")


def _keep(task: asyncio.Future[None]) -> asyncio.Future[None]:
    """Keep a reference to a clean-up until it is done."""
    _releasing.add(task)
    task.add_done_callback(_releasing.discard)
    return task


async def _finish(work: Coroutine[Any, Any, None]) -> None:
    """Run a clean-up to its end before returning, whether or not this task is cancelled.

    It runs in a task of its own, shielded and waited for here: the cancellation that ended
    a block goes on only once it is done (its requests are bounded by the session's
    timeout). A second cancellation stops only the wait; the clean-up runs on.
    """
    await asyncio.shield(_keep(asyncio.ensure_future(work)))


def _refuse_expired(reservation: Reservation) -> None:
    """Raise `TwoChatError` if ``reservation`` has expired: its purchase is not sent."""
    if reservation.is_expired():
        raise TwoChatError(
            f"The reservation of {reservation.number} expired at "
            f"{reservation.expires_at:%Y-%m-%d %H:%M:%S} UTC; nothing was bought. "
            "Reserve the number again to buy it."
        )


def _did_nothing(exc: BaseException) -> bool:
    """Whether a failed reserve or purchase surely did nothing (else its outcome is unknown)."""
    if isinstance(exc, ValueError):
        return True  # an argument refused before anything was sent
    if isinstance(exc, APIConnectionError):
        return not exc.request_sent
    if isinstance(exc, ServerError):
        return False  # 2Chat, or a gateway in front of it, may have failed after acting
    # 2Chat refused it; or the SDK refused to send it (a closed session).
    return isinstance(exc, APIError) or type(exc) is TwoChatError


def _answered(exc: BaseException) -> tuple[str | None, str | None]:
    """Return the uuid and number a failed reserve's answer holds, each ``None`` if unfit.

    An undecodable reservation's `InvalidResponseError` keeps its ``reservation_details``;
    an `APIError` keeps the whole answer, where they are at ``data.reservation_details``.
    The uuid is used only if it is a plain id (`_UUID`), the number only if short and
    printable: they come from an answer that was wrong in some way.
    """
    details = getattr(exc, "body", None)
    if isinstance(details, dict) and "data" in details:
        data = details["data"]
        details = data.get("reservation_details") if isinstance(data, dict) else None
    if not isinstance(details, dict):
        return None, None
    uuid, number = details.get("uuid"), details.get("number")
    if not (isinstance(uuid, str) and _UUID.fullmatch(uuid)):
        uuid = None
    if not (isinstance(number, str) and number.isprintable() and len(number) <= 32):
        number = None
    return uuid, number


class Hold:
    """A reservation cancelled on leaving its ``async with`` block unless purchased.

    Made by [`TwoChatSession.hold()`][twochat_async.TwoChatSession.hold]. Entering the block
    reserves the number; leaving it without a successful `purchase()` cancels the
    reservation, also when the block raised or its task was cancelled. A failure to cancel
    is logged on the ``twochat_async`` logger and never replaces the exception that ended
    the block. A hold is entered once; after its block, `purchase()` only returns what it
    bought.

    When entering fails or is cancelled while 2Chat may be reserving, the hold acts in the
    entering task, before the exception or the cancellation goes on:

    - Its task cancelled while the reserve is in flight (Ctrl-C under ``asyncio.run()`` on
      Python 3.11 and later, a framework cancelling a handler, ``asyncio.timeout()``): it
      waits for the answer (bounded by the session's timeout; a second cancellation stops
      only the wait) and cancels the reservation it brings.
    - The reserve's outcome unknown (a timeout or a dropped connection after the request
      was sent, a `ServerError`, an `InvalidResponseError`): it cancels the reservation if
      the answer names its uuid, else logs one warning naming the group, the number if
      known, and what to check:
      [`reservations()`][twochat_async.TwoChatSession.reservations].
    - The reserve cut off by the event loop cancelling every task at once, as
      ``asyncio.run()`` does when its main coroutine returns while the hold is entering
      (and on Ctrl-C under Python 3.10): nothing can know whether 2Chat reserved, nor the
      uuid, so it logs that warning.

    A reserve that 2Chat refused (any other `APIError`), or that was never sent, reserved
    nothing: its error is raised and nothing is logged.

    Its [`state`][twochat_async.Hold.state] moves ``new`` → ``reserving`` → ``held`` →
    ``purchasing`` → ``purchased``, or ends ``released`` when the block is left without a
    purchase. A purchase that fails goes:

    - back to ``held`` when it surely bought nothing: 2Chat refused it (an `APIError`
      other than a `ServerError`), or it was never sent (an `APIConnectionError` whose
      ``request_sent`` is false, a closed session, or a ``ValueError`` for a reserved
      number that cannot be sent back). `purchase()` may be tried again; leaving the block
      cancels the reservation.
    - to ``unknown`` otherwise: a `ServerError`, an `APIConnectionError` or
      `APITimeoutError` whose request may have reached 2Chat, an `InvalidResponseError`
      (2Chat answered success), or the purchase being cancelled mid-request. 2Chat may
      have bought the number, so the hold neither sends the purchase again (`purchase()`
      raises `TwoChatError`) nor cancels the reservation: leaving the block logs one
      warning naming the number and the reservation to check with
      [`reservations()`][twochat_async.TwoChatSession.reservations] and the numbers of
      your 2Chat account. If nothing was bought, the reservation lapses at its
      ``expires_at``, or cancel it yourself.

    Concurrent `purchase()` calls share one request and its outcome: each gets the same
    `Purchase` or the same exception. A caller cancelled while waiting stops only its own
    wait. Leaving the block while the purchase is in flight, the task being cancelled
    included, waits for the answer (bounded by the session's timeout; a second
    cancellation stops only the wait) and then acts on its outcome as above; a purchase
    that goes through after the block ended with an exception is logged as a warning.

    Args:
        chat: The session that reserves, buys and cancels the number.
        group_id: The group's id.
        number: A specific number of the group, in E.164; ``None`` for a random one.
    """

    __slots__ = (
        "_buying",
        "_chat",
        "_failure",
        "_group_id",
        "_left",
        "_number",
        "_purchase",
        "_reservation",
        "_state",
    )

    def __init__(self, chat: TwoChatSession, group_id: str, number: str | None) -> None:
        self._chat = chat
        self._group_id = group_id
        self._number = number
        self._state: HoldState = "new"
        self._reservation: Reservation | None = None
        self._purchase: Purchase | None = None
        # The one purchase request, shared by every purchase() call.
        self._buying: asyncio.Future[Purchase] | None = None
        self._failure = ""  # why the purchase's outcome is unknown
        self._left = False  # the block has been left

    def __repr__(self) -> str:
        number = self._number if self._reservation is None else self._reservation.number
        uuid = None if self._reservation is None else self._reservation.uuid
        return (
            f"<Hold group_id={self._group_id!r} number={number!r} state={self._state!r} "
            f"reservation={uuid!r}>"
        )

    @property
    def state(self) -> HoldState:
        """Where the hold is: one of the strings below.

        - ``"new"``: not entered yet.
        - ``"reserving"``: entering; the reservation is in flight.
        - ``"held"``: the number is reserved; `purchase()` may buy it.
        - ``"purchasing"``: the purchase is in flight.
        - ``"purchased"``: bought; `purchased` holds the purchase.
        - ``"unknown"``: the purchase failed in a way that leaves 2Chat's outcome
          unknown; it is neither sent again nor cancelled.
        - ``"released"``: the block was left without a purchase and the reservation was
          cancelled (a failure to cancel is logged), or entering the block failed.
        """
        return self._state

    @property
    def reservation(self) -> Reservation:
        """The held reservation.

        Raises:
            TwoChatError: The block has not been entered yet.
        """
        if self._reservation is None:
            raise TwoChatError("The hold has no reservation yet: use it with 'async with'.")
        return self._reservation

    @property
    def purchased(self) -> Purchase | None:
        """The purchase, once `purchase()` has succeeded; else ``None``."""
        return self._purchase

    async def purchase(self) -> Purchase:
        """Buy exactly the held number from the held group.

        The number is sent back as 2Chat wrote it in the reservation, E.164 or not.
        Calls made while a purchase is in flight wait for it and share its outcome.

        Returns:
            The purchase. Calling it again returns the same purchase without a request.

        Raises:
            ValueError: 2Chat's reservation holds a number with control characters, which
                is not sent back; nothing is sent and the hold stays ``held``.
            TwoChatError: Nothing is sent when the block was not entered or was already
                left, the reservation has expired, or an earlier purchase's outcome is
                unknown. Otherwise the purchase failed; see
                [`twochat_async.errors`][twochat_async.errors].
        """
        if self._purchase is not None:
            return self._purchase
        if self._buying is not None and self._state == "purchasing":
            # Shielded: a caller cancelled while waiting does not cancel it for the others.
            return await asyncio.shield(self._buying)
        reservation = self.reservation
        if self._state == "unknown":
            raise TwoChatError(
                f"The outcome of the purchase of {reservation.number} is unknown "
                f"({self._failure}), so it is not sent again. Check reservations() "
                "and the numbers of your 2Chat account before buying it again."
            )
        if self._state == "released":
            raise TwoChatError(
                f"The hold of {reservation.number} was released when its block was left; "
                "nothing was bought. Reserve the number again to buy it."
            )
        _refuse_expired(reservation)
        # Built before the state moves: a number refused here was never sent.
        body = _wire.held_purchase_body(self._group_id, reservation.number)
        self._state = "purchasing"
        buying = self._buying = asyncio.ensure_future(self._buy(reservation, body))
        # Its outcome is read even if every caller was cancelled meanwhile.
        buying.add_done_callback(lambda done: done.cancelled() or done.exception())
        return await asyncio.shield(buying)

    async def __aenter__(self) -> Hold:
        if self._state != "new":
            raise TwoChatError(
                f"This hold was already entered (it is {self._state}); a hold is entered "
                "once: make a new one with chat.hold()."
            )
        self._state = "reserving"
        reserving = asyncio.ensure_future(self._chat.reserve(self._group_id, self._number))
        try:
            self._reservation = await asyncio.shield(reserving)
        except GeneratorExit:  # this coroutine was closed unfinished: it can await no more
            self._state = "released"
            raise
        except BaseException:
            self._state = "released"
            # Here, before the exception goes on: a task left to do it alone would be
            # cancelled with every other one when asyncio.run() ends.
            await _finish(self._undo(reserving))
            raise
        self._state = "held"
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._left = True
        if self._purchase is not None or self._reservation is None:
            return
        if self._state == "held":
            self._state = "released"
        await _finish(self._leave(exc))

    async def _buy(self, reservation: Reservation, body: bytes) -> Purchase:
        try:
            # Checked again once the budget let it go: the wait may outlast the reservation.
            bought = await self._chat._purchase(
                self._group_id, reservation.number, body, lambda: _refuse_expired(reservation)
            )
        except BaseException as exc:
            if _did_nothing(exc):
                self._state = "released" if self._left else "held"
            else:
                self._state = "unknown"
                self._failure = _describe(exc)
            raise
        self._state = "purchased"
        self._purchase = bought
        return bought

    async def _leave(self, ended_by: BaseException | None) -> None:
        reservation = self.reservation
        buying = self._buying
        if buying is not None and not buying.done():
            await asyncio.wait([buying])  # ends within the session's timeout
            if self._purchase is not None and ended_by is not None:
                _wire.warn(
                    logger,
                    "The purchase of %s (reservation %s) went through after its block "
                    "ended with %s: the number is bought.",
                    reservation.number,
                    reservation.uuid,
                    type(ended_by).__name__,
                )
        if self._state == "released":
            await self._release(reservation)
        elif self._state == "unknown":
            _wire.warn(
                logger,
                "The outcome of the purchase of %s is unknown (%s): 2Chat may have bought "
                "it, so its reservation %s was not cancelled (it expires at %s). Check "
                "reservations() and the numbers of your 2Chat account before buying it again.",
                reservation.number,
                self._failure,
                reservation.uuid,
                reservation.expires_at.isoformat(),
            )

    async def _undo(self, reserving: asyncio.Future[Reservation]) -> None:
        """Cancel what a failed or abandoned reserve made, or log what to check."""
        await asyncio.wait([reserving])  # ends within the session's timeout
        if reserving.cancelled():
            self._doubt(
                "its request was cut off: the event loop cancelled every task at once, as "
                "asyncio.run() does when its main coroutine returns while others still run",
                None,
            )
            return
        failure = reserving.exception()
        if failure is None:  # this task was cancelled while 2Chat was reserving
            await self._release(reserving.result())
        elif not _did_nothing(failure):
            uuid, number = _answered(failure)
            if uuid is None:
                self._doubt(_describe(failure), number)
            else:
                about = f"the reserve ended with {_describe(failure)}; check reservations()"
                await self._cancel(uuid, self._asked(number), about)

    def _asked(self, number: str | None) -> str:
        """Name what was reserved: the number asked for or answered, and the group."""
        number = self._number or number
        held = "a number" if number is None else number
        return f"{held} of group {self._group_id!r}"

    def _doubt(self, why: str, number: str | None) -> None:
        """Log that a reservation may have been made that the hold cannot cancel."""
        _wire.warn(
            logger,
            "The reservation of %s may have been made: its outcome is unknown (%s), and the "
            "hold cannot cancel it without its uuid. Check reservations() and cancel it, or "
            "let it lapse at its expires_at.",
            self._asked(number),
            why,
        )

    async def _release(self, reservation: Reservation) -> None:
        """Cancel a reservation that was read; a failure is logged."""
        about = f"it expires at {reservation.expires_at.isoformat()}"
        await self._cancel(reservation.uuid, reservation.number, about)

    async def _cancel(self, uuid: str, held: str, about: str) -> None:
        """Cancel the reservation ``uuid`` of ``held``; a failure is logged, never raised."""
        try:
            await self._chat.cancel_reservation(uuid)
        except (TwoChatError, ValueError) as exc:  # ValueError: a uuid unfit for a path
            _wire.warn(
                logger, "Could not cancel the reservation %s of %s (%s): %s", uuid, held, about, exc
            )


def _describe(exc: BaseException) -> str:
    """Name what made an outcome unknown (a cancellation has no message)."""
    detail = str(exc)
    return f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__
