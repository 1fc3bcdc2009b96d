"""``ManualClock``: a clock that moves only when a test moves it."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

# The public names of this module; twochat_async.testing exports them.
__all__ = ["ManualClock"]


class ManualClock:
    """A clock that stands still until moved, for `FakeTwoChat`'s ``clock=``.

    ```python
    clock = ManualClock()
    fake = FakeTwoChat(clock=clock)
    ...
    clock.advance(timedelta(hours=1))  # every reservation made so far has expired
    ```

    It starts at the current time by default, so that a reservation it dates is not
    already expired by the system clock, which `Reservation.is_expired()` and
    ``Hold.purchase()`` go by.

    Args:
        now: Where the clock starts, timezone-aware; defaults to the current time.

    Attributes:
        now: The time it shows; set it to move the clock anywhere.

    Raises:
        ValueError: ``now`` is naive.
    """

    __slots__ = ("now",)

    def __init__(self, now: datetime | None = None) -> None:
        if now is not None and now.utcoffset() is None:
            raise ValueError("now must be timezone-aware, e.g. datetime.now(timezone.utc)")
        self.now = datetime.now(timezone.utc) if now is None else now

    def __call__(self) -> datetime:
        """Return the time the clock shows."""
        return self.now

    def __repr__(self) -> str:
        return f"<ManualClock {self.now.isoformat()}>"

    def advance(self, delta: timedelta) -> datetime:
        """Move the clock by ``delta`` (back, if negative) and return the new time.

        Args:
            delta: How far to move it.

        Returns:
            The time the clock shows now.
        """
        self.now += delta
        return self.now
