"""2Chat's wire format, without I/O: validate arguments, build bodies, decode answers.

Everything here is a plain function of its inputs, so it is tested with plain calls.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from http import HTTPStatus
from typing import Any, TypeVar

import cattrs
from cattrs.v import format_exception

from .errors import APIError, InvalidResponseError, error_class
from .models import Purchase, Reservation, converter

T = TypeVar("T")

#: How much of a body an error keeps and shows.
SNIPPET_CHARS = 200

_E164 = re.compile(r"\+[1-9][0-9]{1,14}")


def shown(value: object) -> str:
    """Return ``repr(value)`` for an error message, cut to a readable length."""
    try:
        text = repr(value)
    except ValueError:  # an int past sys.get_int_max_str_digits() cannot be printed
        return f"<{type(value).__name__} too long to show>"
    return text if len(text) <= SNIPPET_CHARS else text[:SNIPPET_CHARS] + "…"


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


def check_text(value: str, name: str) -> str:
    """Return ``value`` if it can be sent as UTF-8, else raise ``ValueError``.

    A lone surrogate (``"\\ud800"``, left by decoding bytes with ``surrogateescape``)
    has no UTF-8 form: aiohttp would drop it from a query without a word.
    """
    if not value.isascii():  # O(1) in CPython: the usual case costs nothing
        try:
            value.encode()
        except UnicodeEncodeError:
            raise ValueError(
                f"{name} must be valid Unicode text, but it holds a lone surrogate "
                f"(from bytes decoded with errors='surrogateescape'?): {shown(value)}"
            ) from None
    return value


def check_id(value: object, name: str) -> str:
    """Return ``value`` if it is a non-blank string of valid text, else raise ``ValueError``."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{name} must be a non-empty string, got {shown(value)}")
    return check_text(value, name)


def check_path_segment(value: object, name: str) -> str:
    """Return ``value`` if it is safe as one segment of a URL path, else raise ``ValueError``.

    ``.`` and ``..`` would move along the path (``DELETE .../reservations/..`` is
    ``DELETE /open/numbers/``), and ``/``, ``\\``, whitespace and control characters
    have no place in an id.
    """
    if (
        not isinstance(value, str)
        or value in ("", ".", "..")
        or not value.isprintable()  # control characters, lone surrogates, whitespace but " "
        or any(char in value for char in " /\\")
    ):
        raise ValueError(
            f"{name} must be an id such as 'a1b2c3d4-...': not empty, '.' or '..', and "
            f"without '/', '\\', whitespace or control characters; got {shown(value)}"
        )
    return value


def check_number(value: object, name: str = "number") -> str:
    """Return ``value`` if it is an E.164 phone number, else raise ``ValueError``."""
    if not isinstance(value, str) or _E164.fullmatch(value) is None:
        raise ValueError(
            f"{name} must be an E.164 phone number: '+', then 2 to 15 digits not starting "
            f"with 0, e.g. '+12135551234'; got {value!r}"
        )
    return value


_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)


def encode_json(body: Mapping[str, Any]) -> bytes:
    """Encode a request body as compact UTF-8 JSON.

    Raises:
        ValueError: A string value holds a lone surrogate, which UTF-8 cannot carry.
    """
    text = _ENCODER.encode(body)
    try:
        return text.encode()
    except UnicodeEncodeError:
        for key, value in body.items():
            if isinstance(value, str):
                check_text(value, key)
        raise ValueError(f"The request body is not valid Unicode text: {shown(body)}") from None


def check_reservation(group_id: object, number: object) -> None:
    """Check the arguments of a reservation or purchase, else raise ``ValueError``."""
    check_id(group_id, "group_id")
    if number is not None:
        check_number(number)


def reservation_body(group_id: str, number: str | None) -> bytes:
    """Build the JSON body of a reservation or purchase; ``number`` only when given."""
    check_reservation(group_id, number)
    body = {"group_id": group_id} if number is None else {"group_id": group_id, "number": number}
    return encode_json(body)


def snippet(body: bytes) -> str:
    """Return the start of a body as text, for error messages."""
    text = body[: SNIPPET_CHARS * 4].decode("utf-8", "replace").strip()
    cut = len(text) > SNIPPET_CHARS or len(body) > SNIPPET_CHARS * 4
    return text[:SNIPPET_CHARS] + ("…" if cut else "")


def describe_status(status: int) -> str:
    """Return ``"404 Not Found"``-style text for a status, or the bare number."""
    try:
        return f"{status} {HTTPStatus(status).phrase}"
    except ValueError:
        return str(status)


#: RFC 9110 delay-seconds, plus a fraction some servers send; ASCII digits only (``\d``
#: would take any script's digits, and ``float()`` takes ``"1_0"`` and ``"1e3"`` too).
_DELAY_SECONDS = re.compile(r"[0-9]+(?:\.[0-9]+)?")


def parse_retry_after(value: str | None) -> float | None:
    """Return the seconds a ``Retry-After`` header asks to wait, or ``None``.

    Accepted: ASCII digits with an optional fraction (``"7"``, ``"1.5"``), or an
    HTTP-date (a date in the past is 0 s). Anything else is ``None``.
    """
    if not value:
        return None
    value = value.strip()
    if _DELAY_SECONDS.fullmatch(value):
        seconds = float(value)
        return seconds if math.isfinite(seconds) else None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())


def decode(status: int, headers: Mapping[str, str], body: bytes) -> dict[str, Any]:
    """Decode a 2Chat answer: the JSON object of a success, or raise its error.

    Raises:
        APIError: The status is not 2xx, or the body says ``"success": false``.
        InvalidResponseError: A success whose body is not a JSON object.
    """
    try:
        payload: Any = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        payload = None
        if 200 <= status < 300:
            kind = "an empty body" if not body.strip() else f"not JSON: {snippet(body)!r}"
            raise InvalidResponseError(
                f"2Chat answered {describe_status(status)} with {kind}",
                status=status,
                body=snippet(body),
            ) from None
    if 200 <= status < 300 and not (isinstance(payload, dict) and payload.get("success") is False):
        if not isinstance(payload, dict):
            raise InvalidResponseError(
                f"2Chat answered {describe_status(status)} with JSON that is not an object: "
                f"{snippet(body)!r}",
                status=status,
                body=payload,
            )
        return payload
    raise api_error(status, headers, body, payload)


def api_error(status: int, headers: Mapping[str, str], body: bytes, payload: Any) -> APIError:
    """Build the `APIError` subclass for an error answer."""
    message = payload.get("error_message") if isinstance(payload, dict) else None
    if not isinstance(message, str) or not message.strip():
        if 300 <= status < 400:
            message = (
                f"2Chat answered {describe_status(status)} redirecting to "
                f"{headers.get('Location', 'nowhere')!r}; redirects are not followed so the "
                "API key goes only to base_url: check base_url"
            )
        elif payload is None and body.strip():
            message = (
                f"2Chat answered {describe_status(status)} with a non-JSON body: {snippet(body)!r}"
            )
        else:
            message = f"2Chat answered {describe_status(status)} without an error message"
    kept = payload if payload is not None else snippet(body)
    retry_after = parse_retry_after(headers.get("Retry-After"))
    return error_class(status)(message, status=status, body=kept, retry_after=retry_after)


def _describe(exc: BaseException, type_: type | None) -> str:
    # Our hooks' TypeError/ValueError texts say what was wrong; cattrs' defaults are vaguer.
    if isinstance(exc, (TypeError, ValueError)) and str(exc):
        return str(exc)
    return format_exception(exc, type_)


def structure(data: Any, cls: type[T], *, status: int, what: str) -> T:
    """Structure decoded JSON into ``cls``, turning every failure into ours.

    Raises:
        InvalidResponseError: A field is missing or of the wrong type.
    """
    try:
        return converter.structure(data, cls)
    except Exception as exc:  # structuring is pure: any failure means the data was bad
        if isinstance(exc, cattrs.BaseValidationError):
            details = "; ".join(
                cattrs.transform_error(
                    exc, path=f"$.{what}" if what else "$", format_exception=_describe
                )
            )
        else:
            details = f"{exc} @ $.{what}" if what else f"{exc} @ $"
        raise InvalidResponseError(
            f"2Chat's answer has no valid {what or cls.__name__}: {details}",
            status=status,
            body=data,
        ) from exc


def field(payload: Mapping[str, Any], *path: str, status: int) -> Any:
    """Return ``payload[path[0]][path[1]]...``, or raise ``InvalidResponseError``."""
    value: Any = payload
    for depth, key in enumerate(path):
        # type() first: the ABC isinstance check costs more on the hot path.
        if not (type(value) is dict or isinstance(value, Mapping)) or key not in value:
            where = "$." + ".".join(path[: depth + 1])
            raise InvalidResponseError(
                f"2Chat's answer has no {where}", status=status, body=payload
            )
        value = value[key]
    return value


def decode_reservation(payload: Mapping[str, Any], *, status: int, group_id: str) -> Reservation:
    """Decode the answer of a reservation into a `Reservation` of ``group_id``."""
    details = field(payload, "data", "reservation_details", status=status)
    if isinstance(details, dict):
        details = {**details, "group_id": group_id}
    return structure(details, Reservation, status=status, what="data.reservation_details")


DID_TYPES = frozenset({"global", "local", "mobile", "national", "sharedcost", "tollfree", "all"})


def check_country(value: object) -> str:
    """Return an ISO 3166 alpha-2 country code in upper case, else raise ``ValueError``."""
    if not isinstance(value, str) or len(value) != 2 or not value.isascii() or not value.isalpha():
        raise ValueError(f"country must be an ISO 3166 alpha-2 code such as 'US', got {value!r}")
    return value.upper()


def check_int_id(value: object, name: str) -> int:
    """Return ``value`` if it is a positive int id (not a bool), else raise ``ValueError``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be a non-negative int id, got {value!r}")
    return value


def check_did_type(value: object) -> str:
    """Return a DID type name accepted by Search Number Groups, else raise ``ValueError``."""
    if value not in DID_TYPES:
        raise ValueError(f"did_type must be one of {', '.join(sorted(DID_TYPES))}; got {value!r}")
    return str(value)


def check_digits(value: object, name: str) -> str:
    """Return ``value`` if it is 1 to 15 digits, else raise ``ValueError``."""
    if not isinstance(value, str) or not value.isascii() or not value.isdigit() or len(value) > 15:
        raise ValueError(f"{name} must be 1 to 15 digits such as '555', got {value!r}")
    return value


def query(**params: str | int | None) -> dict[str, str]:
    """Build a query string mapping, leaving out ``None`` values.

    Raises:
        ValueError: A string value holds a lone surrogate (aiohttp would drop it silently).
    """
    return {
        key: check_text(value, key) if isinstance(value, str) else str(value)
        for key, value in params.items()
        if value is not None
    }


def decode_list(payload: Mapping[str, Any], key: str, cls: Any, *, status: int) -> list[Any]:
    """Decode ``data.<key>``, a JSON list, into a list of ``cls`` records."""
    items = field(payload, "data", key, status=status)
    return structure(items, list[cls], status=status, what=f"data.{key}")


def decode_reservations(payload: Mapping[str, Any], *, status: int) -> list[Reservation]:
    """Decode List Reservations, whose ``data`` shape 2Chat leaves open.

    ``data`` may be a list of reservations, or an object holding one under
    ``reservations`` or ``reservation_details`` (a list, or a single reservation), or
    empty (``null``, ``{}``, ``[]``).
    """
    data = field(payload, "data", status=status)
    what = "data"
    if isinstance(data, dict):
        for key in ("reservations", "reservation_details"):
            if key in data:
                data, what = data[key], f"data.{key}"
                break
        else:
            data = data if data else []
    if data is None:
        data = []
    elif isinstance(data, dict):
        data = [data]
    return structure(data, list[Reservation], status=status, what=what)


def decode_account_limit(payload: Mapping[str, Any], *, status: int) -> float:
    """Return ``limits.requests_per_minute`` of ``GET /open/info``, a finite number >= 1.

    Raises:
        InvalidResponseError: It is missing, not a number, not finite, or below 1.
    """
    value = field(payload, "limits", "requests_per_minute", status=status)
    rate = finite(value)
    if rate is None or rate < 1.0:
        raise InvalidResponseError(
            "2Chat's /open/info has no usable limits.requests_per_minute: expected a finite "
            f"number of at least 1, got {shown(value)}",
            status=status,
            body=payload,
        )
    return rate


def decode_purchase(payload: Mapping[str, Any], *, group_id: str, number: str | None) -> Purchase:
    """Keep everything a purchase answer holds beside ``success`` (2Chat leaves it open)."""
    details = {key: value for key, value in payload.items() if key != "success"}
    return Purchase(group_id=group_id, number=number, details=details)
