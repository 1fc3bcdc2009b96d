"""The records, RateLimit's checks, the timestamp parser and the one cattrs converter."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import attrs
import cattrs
import pytest

from twochat_async.models import (
    SNIPPET_CHARS,
    RateLimit,
    Reservation,
    _parse_datetime_fallback,
    converter,
    finite,
    parse_datetime,
    shown,
)

UTC = timezone.utc
CREATED = datetime(2024, 1, 15, 10, 30, tzinfo=UTC)
EXPIRES = datetime(2024, 1, 15, 11, 30, tzinfo=UTC)


@pytest.fixture
def reservation() -> Reservation:
    """A one-hour reservation as in 2Chat's example."""
    return Reservation(
        uuid="reservation-uuid-here",
        number="+12135551234",
        created_at=CREATED,
        expires_at=EXPIRES,
        group_id="abc-123",
    )


# --- Reservation ----------------------------------------------------------------------


def test_reservation_is_frozen(reservation: Reservation) -> None:
    """Assigning a field of a Reservation raises FrozenInstanceError."""
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        reservation.uuid = "other"  # type: ignore[misc]
    assert reservation.uuid == "reservation-uuid-here"


def test_reservation_is_slotted(reservation: Reservation) -> None:
    """A Reservation has slots and no per-instance __dict__."""
    assert not hasattr(reservation, "__dict__")
    assert {"uuid", "number", "created_at", "expires_at", "group_id"} <= set(Reservation.__slots__)


def test_reservation_group_id_defaults_to_none() -> None:
    """group_id is optional and defaults to None."""
    assert Reservation("u", "+12135551234", CREATED, EXPIRES).group_id is None


def test_reservation_structures_from_2chat_json() -> None:
    """The converter builds a Reservation from 2Chat's JSON, timestamps as aware UTC."""
    data = {
        "uuid": "u-1",
        "number": "+12135551234",
        "created_at": "2024-01-15T10:30:00Z",
        "expires_at": "2024-01-15T11:30:00+00:00",
    }
    assert Reservation("u-1", "+12135551234", CREATED, EXPIRES) == converter.structure(
        data, Reservation
    )


def test_reservation_with_int_uuid_is_refused() -> None:
    """A number where the str uuid belongs is a validation error, not a silent str(42)."""
    data = {
        "uuid": 42,
        "number": "+12135551234",
        "created_at": "2024-01-15T10:30:00Z",
        "expires_at": "2024-01-15T11:30:00Z",
    }
    with pytest.raises(cattrs.ClassValidationError):
        converter.structure(data, Reservation)


# --- expires_in / is_expired ----------------------------------------------------------


def test_expires_in_before_expiry(reservation: Reservation) -> None:
    """expires_in is the exact time left at an aware now before expires_at."""
    now = datetime(2024, 1, 15, 11, 0, tzinfo=UTC)
    assert timedelta(minutes=30) == reservation.expires_in(now)


def test_expires_in_after_expiry_is_negative(reservation: Reservation) -> None:
    """expires_in is negative once expires_at has passed."""
    now = datetime(2024, 1, 15, 11, 45, tzinfo=UTC)
    assert timedelta(minutes=-15) == reservation.expires_in(now)


def test_expires_in_with_a_non_utc_now(reservation: Reservation) -> None:
    """expires_in compares instants, whatever the offset of now."""
    now = datetime(2024, 1, 15, 13, 0, tzinfo=timezone(timedelta(hours=2)))
    assert timedelta(minutes=30) == reservation.expires_in(now)


def test_expires_in_defaults_to_the_system_clock(reservation: Reservation) -> None:
    """Without now, expires_in measures against the current time."""
    before = datetime.now(UTC)
    left = reservation.expires_in()
    after = datetime.now(UTC)
    assert EXPIRES - after <= left <= EXPIRES - before


def test_is_expired_before_expiry(reservation: Reservation) -> None:
    """is_expired is False one microsecond before expires_at."""
    assert reservation.is_expired(EXPIRES - timedelta(microseconds=1)) is False


def test_is_expired_at_and_after_expiry(reservation: Reservation) -> None:
    """is_expired is True at expires_at and later."""
    assert reservation.is_expired(EXPIRES) is True
    assert reservation.is_expired(EXPIRES + timedelta(hours=1)) is True


def test_is_expired_defaults_to_the_system_clock(reservation: Reservation) -> None:
    """Without now, is_expired uses the current time (2024's reservation has expired)."""
    assert reservation.is_expired() is True
    future = attrs.evolve(reservation, expires_at=datetime.now(UTC) + timedelta(hours=1))
    assert future.is_expired() is False


def test_naive_now_is_refused(reservation: Reservation) -> None:
    """A naive now raises ValueError in expires_in and is_expired."""
    naive = datetime(2024, 1, 15, 11, 0)
    with pytest.raises(ValueError, match="timezone-aware"):
        reservation.expires_in(naive)
    with pytest.raises(ValueError, match="timezone-aware"):
        reservation.is_expired(naive)


# --- parse_datetime -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-01-15T10:30:00Z", datetime(2024, 1, 15, 10, 30, tzinfo=UTC)),
        ("2024-01-15T10:30:00+00:00", datetime(2024, 1, 15, 10, 30, tzinfo=UTC)),
        ("2024-01-15T10:30:00+02:00", datetime(2024, 1, 15, 8, 30, tzinfo=UTC)),
        ("2024-01-15T10:30:00-05:30", datetime(2024, 1, 15, 16, 0, tzinfo=UTC)),
        ("2024-01-15T10:30:00", datetime(2024, 1, 15, 10, 30, tzinfo=UTC)),
        ("2024-01-15 10:30:00Z", datetime(2024, 1, 15, 10, 30, tzinfo=UTC)),
    ],
    ids=["Z", "+00:00", "+02:00", "-05:30", "no-offset", "space"],
)
def test_parse_datetime_gives_aware_utc(text: str, expected: datetime) -> None:
    """parse_datetime returns the same instant as an aware datetime in UTC."""
    actual = parse_datetime(text)
    assert expected == actual
    assert UTC is actual.tzinfo


@pytest.mark.parametrize(
    ("fraction", "micro"),
    [
        ("1", 100_000),
        ("12", 120_000),
        ("123", 123_000),
        ("1234", 123_400),
        ("12345", 123_450),
        ("123456", 123_456),
        ("1234567", 123_456),
        ("12345678", 123_456),
        ("123456789", 123_456),
    ],
)
def test_parse_datetime_fractional_seconds(fraction: str, micro: int) -> None:
    """parse_datetime accepts 1 to 9 fractional digits, keeping microseconds."""
    expected = datetime(2024, 1, 15, 10, 30, 0, micro, tzinfo=UTC)
    assert expected == parse_datetime(f"2024-01-15T10:30:00.{fraction}Z")


@pytest.mark.parametrize(
    "text",
    ["", "garbage", "2024-13-01T00:00:00Z", "2024-01-15T25:00:00Z", "15/01/2024 10:30"],
)
def test_parse_datetime_rejects_garbage(text: str) -> None:
    """parse_datetime raises ValueError for text that is not an ISO 8601 timestamp."""
    with pytest.raises(ValueError):  # noqa: PT011 - the message comes from the stdlib too
        parse_datetime(text)


# --- the Python 3.10 fallback ---------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-01-15T10:30:00Z", datetime(2024, 1, 15, 10, 30, tzinfo=UTC)),
        ("2024-01-15t10:30:00z", datetime(2024, 1, 15, 10, 30, tzinfo=UTC)),
        ("2024-01-15T10:30:00.1Z", datetime(2024, 1, 15, 10, 30, 0, 100_000, tzinfo=UTC)),
        (
            "2024-01-15T10:30:00.123456789Z",
            datetime(2024, 1, 15, 10, 30, 0, 123_456, tzinfo=UTC),
        ),
        ("2024-01-15T10:30:00,5Z", datetime(2024, 1, 15, 10, 30, 0, 500_000, tzinfo=UTC)),
        ("2024-01-15T10:30Z", datetime(2024, 1, 15, 10, 30, tzinfo=UTC)),
        (
            "2024-01-15T10:30:00+02:00",
            datetime(2024, 1, 15, 10, 30, tzinfo=timezone(timedelta(hours=2))),
        ),
        (
            "2024-01-15T10:30:00+0530",
            datetime(2024, 1, 15, 10, 30, tzinfo=timezone(timedelta(hours=5, minutes=30))),
        ),
        (
            "2024-01-15T10:30:00-05",
            datetime(2024, 1, 15, 10, 30, tzinfo=timezone(timedelta(hours=-5))),
        ),
        ("2024-01-15 10:30:00", datetime(2024, 1, 15, 10, 30)),
    ],
    ids=[
        "Z",
        "lowercase",
        "1-digit",
        "9-digits",
        "comma",
        "no-seconds",
        "+02:00",
        "+0530",
        "-05",
        "naive",
    ],
)
def test_fallback_parses_what_python_310_cannot(text: str, expected: datetime) -> None:
    """The 3.10 fallback parses Z, any fraction and offsets, keeping the given offset."""
    actual = _parse_datetime_fallback(text)
    assert expected == actual
    assert expected.utcoffset() == actual.utcoffset()


def test_fallback_keeps_no_offset_naive() -> None:
    """The fallback leaves a timestamp without offset naive, for parse_datetime to make UTC."""
    assert _parse_datetime_fallback("2024-01-15T10:30:00").tzinfo is None


@pytest.mark.parametrize(
    "text",
    ["", "garbage", "2024-01-15", "2024-02-30T00:00:00Z", "2024-01-15T10:30:00+99:00"],
)
def test_fallback_rejects_garbage(text: str) -> None:
    """The fallback raises ValueError for text it cannot read as a timestamp."""
    with pytest.raises(ValueError):  # noqa: PT011 - the message comes from the stdlib too
        _parse_datetime_fallback(text)


# --- the converter's strict scalars ---------------------------------------------------


@pytest.mark.parametrize(
    ("value", "kind"),
    [(42, str), (True, int), ("1", int), (1.0, int), (1, bool), ("true", bool), (None, str)],
    ids=[
        "int-as-str",
        "bool-as-int",
        "str-as-int",
        "float-as-int",
        "int-as-bool",
        "str-bool",
        "none",
    ],
)
def test_converter_refuses_mistyped_scalars(value: object, kind: type) -> None:
    """A scalar of the wrong JSON type is an error, never silently coerced."""
    with pytest.raises(TypeError, match=f"expected {kind.__name__}"):
        converter.structure(value, kind)


@pytest.mark.parametrize(("value", "kind"), [("abc", str), (3, int), (False, bool)])
def test_converter_accepts_matching_scalars(value: object, kind: type) -> None:
    """A scalar of the right type is returned as is."""
    assert value == converter.structure(value, kind)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("3.50", Decimal("3.50")),
        ("0.00", Decimal("0.00")),
        (3, Decimal(3)),
        ("-1.5", Decimal("-1.5")),
    ],
)
def test_decimal_hook_accepts_strings_and_ints(value: object, expected: Decimal) -> None:
    """Money from a decimal string or an int becomes the exact Decimal."""
    actual = converter.structure(value, Decimal)
    assert expected == actual
    assert str(expected) == str(actual)


@pytest.mark.parametrize("value", [3.5, 0.1, True, False, None, ["3.50"]])
def test_decimal_hook_refuses_floats_bools_and_others(value: object) -> None:
    """Money given as a float, a bool or a non-scalar raises TypeError."""
    with pytest.raises(TypeError, match="decimal string"):
        converter.structure(value, Decimal)


@pytest.mark.parametrize("value", ["NaN", "sNaN", "Infinity", "-Infinity", "abc", ""])
def test_decimal_hook_refuses_non_finite_or_garbage(value: str) -> None:
    """Money that is not a finite decimal number raises ValueError."""
    with pytest.raises(ValueError, match="decimal number"):
        converter.structure(value, Decimal)


@pytest.mark.parametrize("value", [1705314600, None, 1.5])
def test_datetime_hook_refuses_non_strings(value: object) -> None:
    """A timestamp that is not an ISO 8601 string (e.g. epoch seconds) raises TypeError."""
    with pytest.raises(TypeError, match="ISO 8601"):
        converter.structure(value, datetime)


def test_datetime_hook_parses_strings() -> None:
    """The converter turns an ISO 8601 string into an aware UTC datetime."""
    assert converter.structure("2024-01-15T10:30:00Z", datetime) == CREATED


@pytest.mark.parametrize("value", [{"type": "address"}, {}])
def test_mapping_hook_keeps_objects_as_they_are(value: dict[str, Any]) -> None:
    """A free-form object (a requirement) is kept as the very dict 2Chat sent."""
    assert converter.structure(value, Mapping[str, Any]) is value


@pytest.mark.parametrize("value", [["address"], "address", None])
def test_mapping_hook_refuses_what_is_not_an_object(value: object) -> None:
    """A free-form field that is not a JSON object raises TypeError."""
    with pytest.raises(TypeError, match="expected an object"):
        converter.structure(value, Mapping[str, Any])


# --- RateLimit ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (80, RateLimit(80.0, burst=1)),
        (1 / 60, RateLimit(1 / 60)),
        (RateLimit(60, burst=5), RateLimit(60, burst=5)),
        (RateLimit(60, burst=1_000_000), RateLimit(60, burst=1_000_000)),
    ],
    ids=["a-number", "one-an-hour", "a-rate-limit", "the-largest-burst"],
)
def test_rate_limit_of_a_number_or_a_rate_limit(value: Any, expected: RateLimit) -> None:
    """RateLimit.of() takes requests per minute (burst 1) or a RateLimit as it is."""
    assert expected == RateLimit.of(value)


@pytest.mark.parametrize(
    "per_minute",
    [0, -5, float("nan"), float("inf"), "fast", True, None, 1e-300, 5e-324, 0.01, 10**400],
    ids=["0", "-5", "nan", "inf", "fast", "True", "None", "1e-300", "5e-324", "0.01", "10**400"],
)
def test_rate_limit_per_minute_must_be_finite_and_at_least_one_an_hour(per_minute: Any) -> None:
    """per_minute below 1/60, not a number or past a float's range: ValueError, no overflow."""
    with pytest.raises(ValueError, match=r"^per_minute must be a finite number of at least 1/60"):
        RateLimit.of(per_minute)


@pytest.mark.parametrize(
    "burst",
    [0, -1, 1.5, True, "5", 1_000_001, 10**400],
    ids=["0", "-1", "1.5", "True", "'5'", "1_000_001", "10**400"],
)
def test_rate_limit_burst_must_be_an_int_from_1_to_a_million(burst: Any) -> None:
    """burst out of 1 to 1,000,000, or not an int: ValueError, never OverflowError."""
    with pytest.raises(ValueError, match=r"^burst must be an int from 1 to 1,000,000"):
        RateLimit(60, burst=burst)


# --- the helpers of error messages ----------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (80, 80.0),
        (1.5, 1.5),
        (10**300, 1e300),
        (10**400, None),
        (float("inf"), None),
        (float("nan"), None),
        (True, None),
        ("80", None),
        (None, None),
    ],
    ids=repr,
)
def test_finite_reads_finite_numbers_and_never_overflows(value: object, expected: object) -> None:
    """finite() gives a float for finite ints and floats, None for the rest, no OverflowError."""
    assert expected == finite(value)


def test_shown_cuts_long_values_and_survives_unprintable_ints() -> None:
    """shown() keeps messages short, even for an int too long for repr()."""
    assert shown("abc") == "'abc'"
    assert shown("x" * 10_000) == "'" + "x" * (SNIPPET_CHARS - 1) + "…"
    assert shown(10**5000) == "<int too long to show>"
