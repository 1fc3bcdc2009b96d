"""``Hold``: a reservation that lives exactly as long as an ``async with`` block."""

from __future__ import annotations

import asyncio
import logging
from types import TracebackType
from typing import TYPE_CHECKING

from .errors import TwoChatError
from .models import Purchase, Reservation

if TYPE_CHECKING:
    from ._session import TwoChatSession

__all__ = ["Hold"]

logger = logging.getLogger("twochat_async")

# Releases still running after their block's task was cancelled; kept so they aren't
# garbage-collected before they finish.
_releasing: set[asyncio.Future[None]] = set()


def _keep(task: asyncio.Future[None]) -> asyncio.Future[None]:
    """Keep a reference to a background release until it is done."""
    _releasing.add(task)
    task.add_done_callback(_releasing.discard)
    return task


class Hold:
    """A reservation cancelled on leaving its ``async with`` block unless purchased.

    Made by [`TwoChatSession.hold()`][twochat_async.TwoChatSession.hold]. Entering the block
    reserves the number; leaving it without a successful `purchase()` cancels the
    reservation, also when the block raised or its task was cancelled. A failure to cancel
    is logged on the ``twochat_async`` logger and never replaces the exception that ended
    the block.

    Args:
        chat: The session that reserves, buys and cancels the number.
        group_id: The group's id.
        number: A specific number of the group, in E.164; ``None`` for a random one.
    """

    __slots__ = ("_chat", "_group_id", "_number", "_purchase", "_reservation")

    def __init__(self, chat: TwoChatSession, group_id: str, number: str | None) -> None:
        self._chat = chat
        self._group_id = group_id
        self._number = number
        self._reservation: Reservation | None = None
        self._purchase: Purchase | None = None

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

        Returns:
            The purchase. Calling it again returns the same purchase without a request.

        Raises:
            TwoChatError: The reservation has expired (no request is sent), or the
                purchase failed; see [`twochat_async.errors`][twochat_async.errors].
        """
        if self._purchase is not None:
            return self._purchase
        reservation = self.reservation
        if reservation.is_expired():
            raise TwoChatError(
                f"The reservation of {reservation.number} expired at "
                f"{reservation.expires_at:%Y-%m-%d %H:%M:%S} UTC; nothing was bought. "
                "Reserve the number again to buy it."
            )
        self._purchase = await self._chat.purchase(self._group_id, reservation.number)
        return self._purchase

    async def __aenter__(self) -> Hold:
        reserving = asyncio.ensure_future(self._chat.reserve(self._group_id, self._number))
        try:
            self._reservation = await asyncio.shield(reserving)
        except asyncio.CancelledError:
            # Cancelled while 2Chat may be reserving: cancel whatever it reserves.
            _keep(asyncio.ensure_future(self._release_when_made(reserving)))
            raise
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._purchase is not None or self._reservation is None:
            return
        release = _keep(asyncio.ensure_future(self._release(self._reservation)))
        # Shielded: if this task is being cancelled, the cancel request still goes out
        # (bounded by the session timeout); a second cancellation stops only our wait.
        await asyncio.shield(release)

    async def _release_when_made(self, reserving: asyncio.Future[Reservation]) -> None:
        try:
            reservation = await reserving
        except TwoChatError:
            return  # nothing was reserved, or nothing can be known of it
        await self._release(reservation)

    async def _release(self, reservation: Reservation) -> None:
        try:
            await self._chat.cancel_reservation(reservation)
        except TwoChatError as exc:
            logger.warning(
                "Could not cancel the reservation %s of %s (it expires at %s): %s",
                reservation.uuid,
                reservation.number,
                reservation.expires_at.isoformat(),
                exc,
            )
