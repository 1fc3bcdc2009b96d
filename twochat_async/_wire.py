"""2Chat's wire format and the SDK's policy on it, without I/O.

It reads top to bottom: the arguments a call is given, the bodies it sends, the answers
it gets (their errors included), and what to do after a failure. Everything here is a
plain function of its inputs, so it is tested with plain calls.
"""

from __future__ import annotations

import json
import math
import random
import re
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from http import HTTPStatus
from typing import Any, TypeVar, get_args

import cattrs
from cattrs.v import format_exception

from .errors import (
    APIConnectionError,
    APIError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    InvalidResponseError,
    NotFoundError,
    PaymentRequiredError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
    UnprocessableEntityError,
)
from .models import FAST_PATHS, SNIPPET_CHARS, DidTypeName, converter, finite, shown

T = TypeVar("T")

# -- arguments ----------------------------------------------------------------------------
# Each check returns the value to send, or raises ValueError naming the argument. Those of
# optional arguments pass None (not given) through.

_E164 = re.compile(r"\+[1-9][0-9]{1,14}")

#: Checked at run time too: a caller without a type checker may pass any string.
DID_TYPES = frozenset(get_args(DidTypeName))


def check_utf8(value: str, name: str) -> str:
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
    return check_utf8(value, name)


def check_text(value: object, name: str) -> str | None:
    """Return ``value`` if it is ``None`` or a non-blank string of valid text.

    Raises:
        ValueError: It is anything else.
    """
    return None if value is None else check_id(value, name)


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


def check_number(value: object, name: str = "number") -> str | None:
    """Return ``value`` if it is ``None`` or an E.164 phone number, else raise ``ValueError``."""
    if value is None:
        return None
    if not isinstance(value, str) or _E164.fullmatch(value) is None:
        raise ValueError(
            f"{name} must be an E.164 phone number: '+', then 2 to 15 digits not starting "
            f"with 0, e.g. '+12135551234'; got {value!r}"
        )
    return value


def check_country(value: object) -> str:
    """Return an ISO 3166 alpha-2 country code in upper case, else raise ``ValueError``."""
    if not isinstance(value, str) or len(value) != 2 or not value.isascii() or not value.isalpha():
        raise ValueError(f"country must be an ISO 3166 alpha-2 code such as 'US', got {value!r}")
    return value.upper()


def check_int_id(value: object, name: str) -> int | None:
    """Return ``value`` if it is ``None`` or an int id of 0 or more (not a bool).

    Raises:
        ValueError: It is anything else.
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be a non-negative int id, got {value!r}")
    return value


def check_did_type(value: object) -> str | None:
    """Return ``value`` if it is ``None`` or a DID type name Search Number Groups accepts.

    Raises:
        ValueError: It is anything else.
    """
    if value is None:
        return None
    if value not in DID_TYPES:
        raise ValueError(f"did_type must be one of {', '.join(sorted(DID_TYPES))}; got {value!r}")
    return str(value)


def check_digits(value: object, name: str) -> str | None:
    """Return ``value`` if it is ``None`` or 1 to 15 ASCII digits, else raise ``ValueError``."""
    if value is None:
        return None
    if not isinstance(value, str) or not value.isascii() or not value.isdigit() or len(value) > 15:
        raise ValueError(f"{name} must be 1 to 15 digits such as '555', got {value!r}")
    return value


def check_reservation(group_id: object, number: object) -> None:
    """Check the arguments of a reservation or purchase, else raise ``ValueError``."""
    check_id(group_id, "group_id")
    check_number(number)


# -- bodies -------------------------------------------------------------------------------


def query(**params: str | int | None) -> dict[str, str]:
    """Build a query string mapping, leaving out ``None`` values.

    Raises:
        ValueError: A string value holds a lone surrogate (aiohttp would drop it silently).
    """
    return {
        key: check_utf8(value, key) if isinstance(value, str) else str(value)
        for key, value in params.items()
        if value is not None
    }


_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)
#: How that encoder writes a string (non-ASCII kept, as ``ensure_ascii=False`` does).
_encode_string = json.encoder.encode_basestring


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
                check_utf8(value, key)
        raise ValueError(f"The request body is not valid Unicode text: {shown(body)}") from None


def reservation_body(group_id: str, number: str | None) -> bytes:
    """Build the JSON body of a reservation or purchase; ``number`` only when given."""
    if number is None and type(group_id) is str and group_id.isascii() and group_id.strip():
        # The body of every reserve(), with an id check_reservation would pass, written as
        # `encode_json` writes it (json's own string encoder, which JSONEncoder uses) in a
        # fraction of the time.
        return ('{"group_id":' + _encode_string(group_id) + "}").encode()
    check_reservation(group_id, number)
    body = {"group_id": group_id} if number is None else {"group_id": group_id, "number": number}
    return encode_json(body)


# -- answers ------------------------------------------------------------------------------


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


def loads(body: bytes) -> Any:
    """``json.loads(body)``, skipping its encoding detection when the answer is an object.

    A body starting ``{`` then a non-zero byte is UTF-8 to ``json.loads``; decoded here
    (strictly: its own decoding would let encoded surrogates through, so those go to it).
    """
    if body[:1] == b"{" and body[1:2] != b"\x00":
        try:
            text = body.decode()
        except UnicodeDecodeError:
            pass
        else:
            # The scanner json.loads ends in, without its layers and the two whitespace
            # scans around the document. It raises json's JSONDecodeError, or at a value
            # cut short StopIteration, which json.loads words as "Expecting value". Anything
            # after the object goes to json.loads too: trailing whitespace, which it
            # allows, and what it refuses in its own words.
            try:
                value, end = _SCAN(text, 0)
            except StopIteration:
                return json.loads(text)
            return value if end == len(text) else json.loads(text)
    return json.loads(body)


#: json's C scanner of one value, as its decoder is built with (``raw_decode`` calls it).
_SCAN: Callable[[str, int], tuple[Any, int]] = json.JSONDecoder().scan_once  # type: ignore[attr-defined]


def parse(status: int, headers: Mapping[str, str], body: bytes) -> dict[str, Any]:
    """Read a 2Chat answer: the JSON object of a success, or raise its error.

    Raises:
        APIError: The status is not 2xx, or the body says ``"success": false``.
        InvalidResponseError: A success whose body is not a JSON object.
    """
    try:
        payload: Any = loads(body)
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


#: The one table from HTTP status to error class; other statuses >= 500 are ServerError,
#: the rest plain APIError.
STATUS_ERRORS: dict[int, type[APIError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    402: PaymentRequiredError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    422: UnprocessableEntityError,
    429: RateLimitError,
}


def error_class(status: int) -> type[APIError]:
    """Return the `APIError` subclass that stands for an HTTP status."""
    if status >= 500:
        return ServerError
    return STATUS_ERRORS.get(status, APIError)


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


#: The keys of every path asked for, split once (the paths are the methods' constants).
_KEYS: dict[str, tuple[str, ...]] = {}


def _at(payload: Mapping[str, Any], path: str, status: int) -> Any:
    """Return the value at ``path`` (``"$.data.regions"``), or raise ``InvalidResponseError``.

    ``"$"`` is the whole answer but its ``success`` flag, which `parse` has read.
    """
    if path == "$":
        return {key: value for key, value in payload.items() if key != "success"}
    value: Any = payload
    keys = _KEYS.get(path)
    if keys is None:
        keys = _KEYS[path] = tuple(path[2:].split("."))
    try:  # JSON's values: a dict has the key or raises KeyError; the others, TypeError
        for key in keys:
            value = value[key]
    except (KeyError, TypeError):
        depth, value = 0, payload  # walked again, to name the first key missing
        while isinstance(value, dict) and keys[depth] in value:
            value, depth = value[keys[depth]], depth + 1
        where = "$." + ".".join(keys[: depth + 1])
        raise InvalidResponseError(
            f"2Chat's answer has no {where}", status=status, body=payload
        ) from None
    return value


def _describe(exc: BaseException, type_: type | None) -> str:
    # Our hooks' TypeError/ValueError texts say what was wrong; cattrs' defaults are vaguer.
    if isinstance(exc, (TypeError, ValueError)) and str(exc):
        return str(exc)
    return format_exception(exc, type_)


def decode(
    payload: Mapping[str, Any], path: str, cls: type[T], /, *, status: int, **given: Any
) -> T:
    """Decode the value at ``path`` of a 2Chat answer into ``cls``: the one way to a record.

    Args:
        payload: The answer, as `parse` returned it.
        path: Where the value is: ``"$.data.regions"``, or ``"$"`` for the whole answer
            (without its ``success`` flag). Errors name 2Chat's fields from there.
        cls: What to build: a record, ``list[Region]``, ``dict[str, Any]``...
        status: The answer's HTTP status, for the error.
        given: Fields the answer does not carry (the group a reservation was asked of);
            they replace any of 2Chat's own before decoding.

    Raises:
        InvalidResponseError: Nothing is at ``path``, or a field there is missing or of
            the wrong type.
    """
    value = _at(payload, path, status)
    fast = FAST_PATHS.get(cls)
    if fast is not None:
        record: T | None = fast(value, given)
        if record is not None:
            return record
    if given and isinstance(value, dict):
        value = {**value, **given}
    try:
        return converter.structure(value, cls)
    except Exception as exc:  # structuring is pure: any failure means the data was bad
        if isinstance(exc, cattrs.BaseValidationError):
            details = "; ".join(cattrs.transform_error(exc, path, _describe))
        else:
            details = f"{exc} @ {path}"
        what = path if path != "$" else getattr(cls, "__name__", str(cls))
        raise InvalidResponseError(
            f"2Chat's answer has no valid {what}: {details}", status=status, body=value
        ) from exc


def decode_account_limit(payload: Mapping[str, Any], *, status: int) -> float:
    """Return ``limits.requests_per_minute`` of ``GET /open/info``, a finite number >= 1.

    Raises:
        InvalidResponseError: It is missing, not a number, not finite, or below 1.
    """
    value = _at(payload, "$.limits.requests_per_minute", status)
    rate = finite(value)
    if rate is None or rate < 1.0:
        raise InvalidResponseError(
            "2Chat's /open/info has no usable limits.requests_per_minute: expected a finite "
            f"number of at least 1, got {shown(value)}",
            status=status,
            body=payload,
        )
    return rate


# -- after a failure ----------------------------------------------------------------------

#: Statuses 2Chat documents as passing (409 booting, 410 connecting, 429 rate limited,
#: 486 busy, 503/504 unavailable) plus 500/502; retried for idempotent methods only.
RETRY_STATUSES = frozenset({409, 410, 429, 486, 500, 502, 503, 504})
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "DELETE"})
BACKOFF_BASE = 0.5
BACKOFF_CAP = 8.0
#: The longest Retry-After that is waited for; a longer one is raised at once.
MAX_RETRY_AFTER = 60.0
#: How long a rate limiter pauses after a 429 that carried no Retry-After.
DEFAULT_429_PAUSE = 1.0
#: A wait on Retry-After is lengthened by a random share of up to this much of
#: (1 s + Retry-After): 0.1 s of spread at 0 s, 0.6 s at 5 s, 6.1 s at 60 s.
RETRY_AFTER_JITTER = 0.1


def retry_delay(
    method: str, exc: APIError | APIConnectionError, attempt: int, max_retries: int
) -> float | None:
    """Return the seconds to wait before sending again, or ``None`` to raise ``exc``.

    A POST is sent again only when 2Chat surely did not act on it (a 429, or a failure
    to connect); GET and DELETE also after timeouts, dropped connections and the statuses
    2Chat tells clients to retry. Waits follow ``Retry-After`` (up to 60 s, jittered) or
    back off exponentially with full jitter.

    Args:
        method: The request's HTTP method.
        exc: What the attempt ended with.
        attempt: How many retries were made already (0 after the first attempt).
        max_retries: How many retries are allowed in all.
    """
    if attempt >= max_retries:
        return None
    if isinstance(exc, APIConnectionError):
        # A POST that may have reached 2Chat is never re-sent: it could buy twice.
        if exc.request_sent and method not in IDEMPOTENT_METHODS:
            return None
    elif exc.status not in RETRY_STATUSES or (
        exc.status != 429 and method not in IDEMPOTENT_METHODS
    ):
        return None
    elif exc.retry_after is not None:
        if exc.retry_after > MAX_RETRY_AFTER:
            return None
        # Jittered, so that tasks told to wait together do not all come back together.
        spread = RETRY_AFTER_JITTER * (1.0 + exc.retry_after)
        return exc.retry_after + random.uniform(0.0, spread)  # noqa: S311
    # Exponential backoff with full jitter (spreads out tasks that failed together).
    return random.uniform(0.0, min(BACKOFF_CAP, BACKOFF_BASE * 2**attempt))  # noqa: S311
