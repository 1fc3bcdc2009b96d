"""Records returned by the SDK, and the one cattrs converter that builds them.

Records are frozen, slotted attrs classes. The converter is configured once at import:
strict scalars (a number where a string belongs is an error, not a silent ``str(42)``),
timezone-aware UTC datetimes, and ``Decimal`` money that refuses floats.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar

import attrs
import cattrs

__all__ = ["Reservation", "converter", "parse_datetime"]

T = TypeVar("T")

# Python 3.10's fromisoformat accepts neither "Z" nor fractions other than 3 or 6 digits;
# this pattern is the fallback for those, and for the "," decimal mark ISO 8601 allows.
_ISO_DATETIME = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d+))?)?"
    r"(Z|[+-]\d{2}(?::?\d{2})?)?",
    re.IGNORECASE,
)


def parse_datetime(value: str) -> datetime:
    """Parse an ISO 8601 timestamp into a timezone-aware UTC datetime.

    Accepts a ``Z`` or numeric offset and any number of fractional digits. A timestamp
    without an offset is taken as UTC, which is what 2Chat documents for all of its times.

    Raises:
        ValueError: The text is not an ISO 8601 timestamp.
    """
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        parsed = _parse_datetime_fallback(value)
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=timezone.utc)
    if parsed.utcoffset() == timedelta(0):
        return parsed if parsed.tzinfo is timezone.utc else parsed.replace(tzinfo=timezone.utc)
    return parsed.astimezone(timezone.utc)


def _parse_datetime_fallback(value: str) -> datetime:
    match = _ISO_DATETIME.fullmatch(value.strip())
    if match is None:
        raise ValueError(f"not an ISO 8601 timestamp: {value!r}")
    year, month, day, hour, minute, second, fraction, offset = match.groups()
    micro = int((fraction or "0")[:6].ljust(6, "0"))
    tz: timezone | None = None
    if offset and offset.upper() != "Z":
        digits = offset[1:].replace(":", "")
        delta = timedelta(hours=int(digits[:2]), minutes=int(digits[2:4] or 0))
        tz = timezone(-delta if offset[0] == "-" else delta)
    elif offset:
        tz = timezone.utc
    return datetime(
        int(year), int(month), int(day), int(hour), int(minute), int(second or 0), micro, tz
    )


def _utcnow(now: datetime | None) -> datetime:
    if now is None:
        return datetime.now(timezone.utc)
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware, e.g. datetime.now(timezone.utc)")
    return now


@attrs.frozen
class Reservation:
    """A number held for this account until ``expires_at``; purchase or cancel it before.

    Attributes:
        uuid: The reservation's id; cancel the reservation with it.
        number: The reserved phone number, in E.164.
        created_at: When the reservation was made (timezone-aware, UTC).
        expires_at: When 2Chat releases the number unless purchased (timezone-aware, UTC).
        group_id: The number group it was reserved from, when known (``reserve()`` fills
            it with the group asked for, so a later purchase has what it needs).
    """

    uuid: str
    number: str
    created_at: datetime
    expires_at: datetime
    group_id: str | None = None

    def expires_in(self, now: datetime | None = None) -> timedelta:
        """Return the time left before the reservation expires (negative once expired).

        Args:
            now: The current time, timezone-aware; defaults to the system clock.

        Raises:
            ValueError: ``now`` is naive.
        """
        return self.expires_at - _utcnow(now)

    def is_expired(self, now: datetime | None = None) -> bool:
        """Return whether the reservation has expired at ``now``.

        Args:
            now: The current time, timezone-aware; defaults to the system clock.

        Raises:
            ValueError: ``now`` is naive.
        """
        return self.expires_at <= _utcnow(now)


def _strict(kind: type[T]) -> Any:
    def structure(value: Any, _: Any) -> T:
        # bool is an int subclass, yet never a valid id, count or price in 2Chat's JSON.
        if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
            raise TypeError(f"expected {kind.__name__}, got {type(value).__name__}")
        return value

    return structure


def _structure_datetime(value: Any, _: Any) -> datetime:
    if not isinstance(value, str):
        raise TypeError(f"expected an ISO 8601 string, got {type(value).__name__}")
    return parse_datetime(value)


def _structure_decimal(value: Any, _: Any) -> Decimal:
    # Money is sent as decimal strings; a float has already lost digits (Decimal(3.1)).
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise TypeError(f"expected a decimal string, got {type(value).__name__}")
    try:
        result = Decimal(value)
    except InvalidOperation:
        raise ValueError(f"not a decimal number: {value!r}") from None
    if not result.is_finite():
        raise ValueError(f"not a finite decimal number: {value!r}")
    return result


def _make_converter() -> cattrs.Converter:
    conv = cattrs.Converter()
    for kind in (str, int, bool):
        conv.register_structure_hook(kind, _strict(kind))
    conv.register_structure_hook(datetime, _structure_datetime)
    conv.register_structure_hook(Decimal, _structure_decimal)
    return conv


#: The one converter of the SDK, configured at import.
converter = _make_converter()
