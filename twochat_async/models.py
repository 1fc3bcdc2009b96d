"""Records of the SDK, and the one cattrs converter that builds them from 2Chat's JSON.

Records are frozen, slotted attrs classes: the answers' records, and `RateLimit`, the
client-side budget a session is given. The converter is configured once at import:
strict scalars (a number where a string belongs is an error, not a silent ``str(42)``),
timezone-aware UTC datetimes, and ``Decimal`` money that refuses floats.
"""

from __future__ import annotations

import math
import re
import sys
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from typing import Any, Literal, TypeVar

import attrs
import cattrs
from cattrs.errors import AttributeValidationNote, IterableValidationError, IterableValidationNote
from cattrs.gen import make_dict_structure_fn
from cattrs.v import format_exception

# The public names of this module; the package exports them (see __init__.py).
__all__ = [
    "AccountInfo",
    "AvailableNumber",
    "City",
    "DidType",
    "NumberGroup",
    "Purchase",
    "RateLimit",
    "Record",
    "Region",
    "Reservation",
]

T = TypeVar("T")

#: The kinds of number ``groups(did_type=...)`` filters on (2Chat's *Search Number
#: Groups*); a type checker flags any other string. Import it from here to annotate
#: your own variables: ``from twochat_async.models import DidTypeName``.
DidTypeName = Literal["global", "local", "mobile", "national", "sharedcost", "tollfree", "all"]

#: How much of a value or body an error message quotes.
SNIPPET_CHARS = 200


def cut(text: str) -> str:
    """Return ``text`` cut to SNIPPET_CHARS for an error message, ``…`` marking a cut."""
    return text if len(text) <= SNIPPET_CHARS else text[:SNIPPET_CHARS] + "…"


def shown(value: object) -> str:
    """Return ``repr(value)`` for an error message, cut to a readable length."""
    try:
        text = repr(value)
    except ValueError:  # an int past sys.get_int_max_str_digits() cannot be printed
        return f"<{type(value).__name__} too long to show>"
    return cut(text)


def finite(value: object) -> float | None:
    """Return ``value`` as a float if it is a finite int or float (not a bool), else ``None``.

    An int too large for a float gives ``None``, never ``OverflowError``.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


# Python 3.10's fromisoformat accepts neither "Z" nor fractions other than 3 or 6 digits;
# this pattern is the fallback for those, and for the "," decimal mark ISO 8601 allows.
_ISO_DATETIME = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d+))?)?"
    r"(Z|[+-]\d{2}(?::?\d{2})?)?",
    re.IGNORECASE,
)


_ZERO = timedelta(0)
# Python 3.10's fromisoformat rejects a trailing "Z"; spelled "+00:00" it takes the fast path.
_Z_UNSUPPORTED = sys.version_info < (3, 11)


def parse_datetime(value: str) -> datetime:
    """Parse an ISO 8601 timestamp into a timezone-aware UTC datetime.

    Accepts a ``Z`` or numeric offset and any number of fractional digits. A timestamp
    without an offset is taken as UTC, which is what 2Chat documents for all of its times.

    Raises:
        ValueError: The text is not an ISO 8601 timestamp.
    """
    if _Z_UNSUPPORTED and value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        parsed = _parse_datetime_fallback(value)
    tz = parsed.tzinfo
    if tz is timezone.utc:  # the usual case, "...Z": nothing to convert
        return parsed
    if tz is None:
        return parsed.replace(tzinfo=timezone.utc)
    if parsed.utcoffset() == _ZERO:
        return parsed.replace(tzinfo=timezone.utc)
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


R = TypeVar("R", bound="Record")


class Record:
    """What every record of the SDK can do: become JSON-ready built-ins, and back."""

    __slots__ = ()

    def to_dict(self) -> dict[str, Any]:
        """Return the record as JSON-ready built-ins, for ``json.dumps``, FastAPI or Celery.

        Datetimes become ISO 8601 UTC strings ending in ``Z``, ``Decimal`` prices exact
        strings, sets sorted lists, and nested records dicts. `from_dict` turns the result
        back into an equal record.

        Returns:
            A dict of the record's fields, by name.
        """
        data: dict[str, Any] = records.unstructure(self)
        return data

    @classmethod
    def from_dict(cls: type[R], data: Mapping[str, Any]) -> R:
        """Build the record from what `to_dict` returned (after a JSON round trip, say).

        Args:
            data: The record's fields, by name, as `to_dict` gives them.

        Returns:
            The record.

        Raises:
            ValueError: ``data`` is not such a record: the message names each bad field.
        """
        if not isinstance(data, Mapping):
            raise ValueError(f"{cls.__name__}.from_dict() takes a dict, got {shown(data)}")
        try:
            return records.structure(dict(data), cls)
        except Exception as exc:  # structuring is pure: any failure means the data was bad
            raise ValueError(f"Not a valid {cls.__name__}: {field_errors(exc, '$')}") from None


@attrs.frozen
class Reservation(Record):
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

        Returns:
            ``expires_at`` minus ``now``: the time left, negative once expired.

        Raises:
            ValueError: ``now`` is naive.
        """
        return self.expires_at - _utcnow(now)

    def is_expired(self, now: datetime | None = None) -> bool:
        """Return whether the reservation has expired at ``now``.

        Args:
            now: The current time, timezone-aware; defaults to the system clock.

        Returns:
            ``True`` when ``expires_at`` is at or before ``now``, else ``False``.

        Raises:
            ValueError: ``now`` is naive.
        """
        return self.expires_at <= _utcnow(now)


@attrs.frozen
class Region(Record):
    """A region of a country (2Chat has them for US, CA and GB).

    Attributes:
        id: The region's id; pass it as ``region_id`` to ``cities()`` and ``groups()``.
        name: The region's name, e.g. ``"California"``.
        country: ISO 3166 alpha-2 code of its country.
    """

    id: int
    name: str
    country: str


@attrs.frozen
class City(Record):
    """A city of a country.

    Attributes:
        id: The city's id; pass it as ``city_id`` to ``groups()``.
        name: The city's name, e.g. ``"Los Angeles"``.
        country: ISO 3166 alpha-2 code of its country.
    """

    id: int
    name: str
    country: str


@attrs.frozen
class DidType(Record):
    """A kind of number (DID type) 2Chat sells.

    Attributes:
        id: The type's id; pass it as ``did_type`` to ``requirements()``.
        name: The type's name: global, local, mobile, national, sharedcost or tollfree.
    """

    id: int
    name: str


@attrs.frozen
class NumberGroup(Record):
    """A group of numbers sharing a location, a type and a price.

    Attributes:
        id: The group's id; pass it to ``available_numbers()``, ``reserve()``, ``purchase()``.
        prefix: The dialling prefix shown to people, e.g. ``"+1 (213)"``.
        location: The city or area the numbers belong to.
        setup_price: One-off price of a number, exact.
        monthly_price: Monthly price of a number, exact.
        type: The DID type name, e.g. ``"local"``.
        requirements: Documents needed to buy a number; empty when none are.
        allow_number_selection: Whether a specific number may be picked with
            ``available_numbers()``; if not, a random one is assigned.
        is_eligible_for_free_number: Whether the account's free number may come from here.
        features: What the numbers support, e.g. ``{"voice", "sms_in"}``.
    """

    id: str
    prefix: str
    location: str
    setup_price: Decimal
    monthly_price: Decimal
    type: str
    requirements: tuple[Mapping[str, Any], ...] = ()
    allow_number_selection: bool = False
    is_eligible_for_free_number: bool = False
    features: frozenset[str] = frozenset()


@attrs.frozen
class AvailableNumber(Record):
    """A number of a group that can be reserved or purchased.

    Attributes:
        id: 2Chat's id of the number.
        number: The phone number, in E.164.
    """

    id: str
    number: str


@attrs.frozen
class Purchase(Record):
    """The outcome of a successful purchase.

    Attributes:
        group_id: The group the number was bought from.
        number: The number asked for, or ``None`` when 2Chat picked one.
        details: Everything 2Chat returned beside ``success`` (its shape is undocumented).
    """

    group_id: str
    number: str | None
    details: Mapping[str, Any]


#: The slowest `RateLimit` (one request an hour) and the largest burst.
MIN_PER_MINUTE = 1 / 60
MAX_BURST = 1_000_000


@attrs.frozen
class RateLimit(Record):
    """A client-side request budget: ``per_minute`` requests, at most ``burst`` at once.

    With ``burst=1`` requests are paced evenly, one every ``60 / per_minute`` seconds.

    Attributes:
        per_minute: Requests allowed per minute (2Chat: 80 on paid plans, 30 on trial):
            a finite number of at least 1/60 (one request an hour).
        burst: Requests that may go out back to back after an idle spell: an int from 1
            to 1,000,000.

    Raises:
        ValueError: ``per_minute`` or ``burst`` is out of range or not a number.
    """

    per_minute: float
    burst: int = 1

    def __attrs_post_init__(self) -> None:
        rate = finite(self.per_minute)
        if rate is None or rate < MIN_PER_MINUTE:
            # Slower than one an hour, a slot is days away; near 0, the wait divides by zero.
            raise ValueError(
                "per_minute must be a finite number of at least 1/60 (one request an hour), "
                f"got {shown(self.per_minute)}"
            )
        burst = self.burst
        if isinstance(burst, bool) or not isinstance(burst, int) or not 1 <= burst <= MAX_BURST:
            raise ValueError(f"burst must be an int from 1 to {MAX_BURST:,}, got {shown(burst)}")

    @classmethod
    def of(cls, value: Any) -> RateLimit:
        """Return ``value`` as a `RateLimit` (a number means ``burst=1``).

        Args:
            value: A `RateLimit`, or requests per minute (an ``int`` or ``float``).

        Returns:
            ``value`` itself if it is a `RateLimit`, else ``RateLimit(value)``.

        Raises:
            ValueError: ``value`` is neither a `RateLimit` nor a finite number of at least
                1/60.
        """
        return value if isinstance(value, RateLimit) else cls(value)


@attrs.frozen
class AccountInfo(Record):
    """The account, its rate limit and its usage, from ``GET /open/info``.

    Attributes:
        name: The account's name.
        uuid: The account's id.
        on_trial: Whether the account is on a trial (30 requests per minute).
        blocked: Whether the account is blocked.
        created_at: When the account was created (UTC).
        expires_at: When the account's plan expires (UTC), if it does.
        requests_per_minute: The account's API rate limit.
        api_request_count: API requests made in the current period.
        max_api_request_count: API requests allowed in the current period.
        number_check_count: Number checks made in the current period.
        max_number_check_count: Number checks allowed in the current period.
    """

    name: str
    uuid: str
    on_trial: bool
    blocked: bool
    created_at: datetime
    expires_at: datetime | None
    requests_per_minute: int
    api_request_count: int
    max_api_request_count: int
    number_check_count: int
    max_number_check_count: int


#: How many field errors a structuring error lists, each cut to SNIPPET_CHARS.
SHOWN_FIELD_ERRORS = 5


def field_errors(exc: Exception, path: str) -> str:
    """Say what was wrong with data that did not structure: its first field errors, each
    with its JSON path from ``path``, then how many more there were or went unchecked."""
    if not isinstance(exc, cattrs.BaseValidationError):
        return cut(f"{exc} @ {path}")
    lines = cattrs.transform_error(exc, path, _describe)
    shown_lines = [cut(line) for line in lines[:SHOWN_FIELD_ERRORS]]
    if len(lines) > SHOWN_FIELD_ERRORS:
        shown_lines.append(f"and {len(lines) - SHOWN_FIELD_ERRORS} more field errors")
    unchecked = _unchecked(exc)
    if unchecked:
        shown_lines.append(f"{unchecked} more items not checked")
    return "; ".join(shown_lines)


def _describe(exc: BaseException, type_: type | None) -> str:
    # Our hooks' TypeError/ValueError texts say what was wrong; cattrs' defaults are vaguer.
    if isinstance(exc, (TypeError, ValueError)) and str(exc):
        return str(exc)
    return format_exception(exc, type_)


def _unchecked(exc: BaseException) -> int:
    """Count the list items a failed structuring gave up on (see `_BadItems`)."""
    below = getattr(exc, "exceptions", ())
    return getattr(exc, "unchecked", 0) + sum(map(_unchecked, below))


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
    if isinstance(value, Decimal):
        return value
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise TypeError(f"expected a decimal string, got {type(value).__name__}")
    try:
        result = Decimal(value)
    except InvalidOperation:
        raise ValueError(f"not a decimal number: {value!r}") from None
    if not result.is_finite():
        raise ValueError(f"not a finite decimal number: {value!r}")
    return result


#: How many bad items of a list are structured before giving up: the error then says how
#: many were left unchecked. Each failure costs far more than a success (its error tree is
#: built), so a list of a million bad items must not be tried whole.
MAX_BAD_ITEMS = 5


class _BadItems(IterableValidationError):
    """Some items of a list failed; ``unchecked`` more after the last were not tried."""

    unchecked = 0


def _bounded_list(kind: Any, conv: cattrs.Converter) -> Any:
    """Return the hook of ``list[X]``: a JSON array only, checked until 5 items fail."""
    item: Any = kind.__args__[0]
    structure_item = conv.get_structure_hook(item)

    def structure(value: Any, _: Any) -> list[Any]:
        if not isinstance(value, list):  # a str or dict would be iterated item by item
            raise TypeError(f"expected a list, got {type(value).__name__}")
        done: list[Any] = []
        errors: list[Exception] = []
        for index, element in enumerate(value):
            try:
                done.append(structure_item(element, item))
            except Exception as exc:
                # Noted as cattrs notes an item, so that the error's path says [index].
                note = IterableValidationNote(f"Structuring item @ index {index}", index, item)
                exc.__notes__ = [*getattr(exc, "__notes__", ()), note]  # type: ignore[attr-defined]
                errors.append(exc)
                if len(errors) == MAX_BAD_ITEMS:
                    break
        if errors:
            failed = _BadItems(f"While structuring {kind!r}", errors, kind)
            failed.unchecked = len(value) - index - 1
            raise failed
        return done

    return structure


def _structure_strings(value: Any, _: Any) -> frozenset[str]:
    # A JSON array only: a string or an object would be iterated letter by letter, key by key.
    if not isinstance(value, list):
        raise TypeError(f"expected a list, got {type(value).__name__}")
    return frozenset(_strict(str)(item, str) for item in value)


def _structure_mapping(value: Any, _: Any) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise TypeError(f"expected an object, got {type(value).__name__}")
    return value


# 2Chat's JSON shapes where they differ from the records. Answers are decoded into these
# first, so that an error names the field as 2Chat sent it ($.data.regions[0].region_name),
# then copied into the flat records users see.


@attrs.frozen
class _RegionWire:
    id: int
    region_name: str
    iso_country_code: str


@attrs.frozen
class _CityWire:
    id: int
    city_name: str
    iso_country_code: str


@attrs.frozen
class _PriceWire:
    setup_price: Decimal
    monthly_price: Decimal


@attrs.frozen
class _GroupPriceWire:
    price: _PriceWire


@attrs.frozen
class _AccountWire:
    name: str
    uuid: str
    on_trial: bool
    blocked: bool
    created_at: datetime
    expires_at: datetime | None = None


@attrs.frozen
class _LimitsWire:
    requests_per_minute: int


@attrs.frozen
class _UsageWire:
    api_request_count: int
    max_api_request_count: int
    number_check_count: int
    max_number_check_count: int


@attrs.frozen
class _InfoWire:
    account: _AccountWire
    limits: _LimitsWire
    usage: _UsageWire


def _fields(*records: Any) -> dict[str, Any]:
    """Merge the fields of records into one mapping (shallow)."""
    merged: dict[str, Any] = {}
    for record in records:
        merged.update(attrs.asdict(record, recurse=False))
    return merged


def _info(wire: _InfoWire) -> AccountInfo:
    return AccountInfo(**_fields(wire.account, wire.limits, wire.usage))


#: Where List Reservations' ``data`` may hold its items: 2Chat leaves its shape open.
_RESERVATION_KEYS = ("reservations", "reservation_details")


def _open_reservations(conv: cattrs.Converter) -> Any:
    """Return the hook of ``list[Reservation]``, which reads List Reservations' open shapes.

    ``data`` may be a list of reservations, or an object holding one under
    ``reservations`` or ``reservation_details`` (a list, or a single reservation), or
    empty (``null``, ``{}``, ``[]``). An error names the key it came from, as in
    ``$.data.reservations[0].expires_at``.
    """
    # cattrs' own hook, taken before ours replaces it.
    items: Callable[[Any, Any], list[Reservation]] = conv.get_structure_hook(list[Reservation])

    def structure(value: Any, kind: Any) -> list[Reservation]:
        key = None
        if isinstance(value, dict):
            key = next((k for k in _RESERVATION_KEYS if k in value), None)
            # Without either key, {} holds no reservation and any other object is one.
            value = value[key] if key is not None else value or None
        if value is None:
            return []
        if isinstance(value, dict):
            value = [value]
        try:
            return items(value, kind)
        except Exception as exc:
            if key is None:
                raise
            # Noted the way cattrs notes a field, so that the error's path names the key.
            note = AttributeValidationNote(f"Structuring data @ {key}", key, kind)
            exc.__notes__ = [*getattr(exc, "__notes__", ()), note]  # type: ignore[attr-defined]
            raise cattrs.ClassValidationError("While structuring data", [exc], dict) from None

    return structure


def _strict_converter() -> cattrs.Converter:
    """A converter with the SDK's strict field hooks, which both converters build on."""
    conv = cattrs.Converter()
    for kind in (str, int, bool):
        conv.register_structure_hook(kind, _strict(kind))
    conv.register_structure_hook(datetime, _structure_datetime)
    conv.register_structure_hook(Decimal, _structure_decimal)
    conv.register_structure_hook_func(lambda t: t == Mapping[str, Any], _structure_mapping)
    conv.register_structure_hook_func(lambda t: t == frozenset[str], _structure_strings)
    return conv


def _make_converter() -> cattrs.Converter:
    conv = _strict_converter()
    conv.register_structure_hook_factory(
        lambda t: getattr(t, "__origin__", None) is list and len(t.__args__) == 1, _bounded_list
    )

    def via(record: type[T], wire: type[Any], build: Any) -> None:
        conv.register_structure_hook(record, lambda value, _: build(conv.structure(value, wire)))

    via(Region, _RegionWire, lambda w: Region(w.id, w.region_name, w.iso_country_code))
    via(City, _CityWire, lambda w: City(w.id, w.city_name, w.iso_country_code))
    group = make_dict_structure_fn(NumberGroup, conv)

    def structure_group(value: Any, _: Any) -> NumberGroup:
        # The price object first, so its errors name $...price.setup_price, then the rest.
        price = conv.structure(value, _GroupPriceWire).price
        return group({**value, **attrs.asdict(price)}, NumberGroup)

    conv.register_structure_hook(NumberGroup, structure_group)
    via(AccountInfo, _InfoWire, _info)
    reservations = _open_reservations(conv)
    conv.register_structure_hook_func(lambda t: t == list[Reservation], reservations)
    return conv


#: The one converter of the SDK, configured at import.
converter = _make_converter()


def _iso_z(value: datetime) -> str:
    return value.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def _of(origin: type) -> Callable[[Any], bool]:
    return lambda kind: getattr(kind, "__origin__", None) is origin


def _make_records() -> cattrs.Converter:
    """The converter of `Record.to_dict` and `Record.from_dict`: records as built-ins."""
    conv = _strict_converter()
    conv.register_unstructure_hook(datetime, _iso_z)
    conv.register_unstructure_hook(Decimal, str)
    conv.register_unstructure_hook_func(lambda t: t == Mapping[str, Any], dict)
    # JSON has arrays only: a set sorted (a stable output), a tuple as a list.
    conv.register_unstructure_hook_func(_of(frozenset), sorted)
    conv.register_unstructure_hook_func(_of(tuple), lambda v: [conv.unstructure(i) for i in v])
    return conv


#: The converter of `Record.to_dict` / `Record.from_dict`, configured at import.
records = _make_records()
