"""2Chat's wire format and the SDK's policy on it, without I/O.

It reads top to bottom: the arguments a call is given, the bodies it sends, the answers
it gets (their errors included), and what to do after a failure. Everything here is a
plain function of its inputs, so it is tested with plain calls.
"""

from __future__ import annotations

import array
import codecs
import gc
import ipaddress
import itertools
import json
import logging
import math
import random
import re
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from http import HTTPStatus
from ssl import SSLContext
from typing import Any, TypeVar, get_args

import aiohttp
from yarl import URL

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
    escape_controls,
)
from .models import SNIPPET_CHARS, DidTypeName, converter, field_errors, finite, shown

T = TypeVar("T")

#: Where requests go unless ``base_url`` or ``TWOCHAT_BASE_URL`` says otherwise.
DEFAULT_BASE_URL = "https://api.p.2chat.io"

# -- arguments ----------------------------------------------------------------------------
# Each check returns the value to send, or raises ValueError naming the argument. Those of
# optional arguments pass None (not given) through.


class ArgumentError(ValueError):
    """A bad argument: a ``ValueError`` that keeps the argument's name apart from the problem.

    ``str()`` names arguments as Python does; the command line names them as options.
    """

    def __init__(self, argument: str, problem: str, allowed_by: str | None = None) -> None:
        super().__init__(argument, problem, allowed_by)
        #: The argument's Python name (``base_url``).
        self.argument = argument
        #: What is wrong with it, after its name.
        self.problem = problem
        #: The flag that allows what was refused (``allow_insecure_http``), if one does.
        self.allowed_by = allowed_by

    def __str__(self) -> str:
        return self.words({})

    def words(self, names: Mapping[str, str]) -> str:
        """Return the message with each argument called by its name in ``names``, if there."""
        text = f"{names.get(self.argument, self.argument)} {self.problem}"
        if self.allowed_by is not None:
            flag = names.get(self.allowed_by, f"{self.allowed_by}=True")
            text += f" Pass {flag} to allow it."
        return text


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
            raise ArgumentError(
                name,
                f"must be valid Unicode text, but it holds a lone surrogate "
                f"(from bytes decoded with errors='surrogateescape'?): {shown(value)}",
            ) from None
    return value


def check_id(value: object, name: str) -> str:
    """Return ``value`` if it is a non-blank string of valid text, else raise ``ValueError``.

    Valid text has no control characters (those `escape_controls` escapes): 2Chat
    echoes ids and search text into its messages, and a CR, LF or ESC there would reach
    the caller's logs and terminal.
    """
    if not isinstance(value, str) or not value.strip():
        raise ArgumentError(name, f"must be a non-empty string, got {shown(value)}")
    check_utf8(value, name)
    if escape_controls(value) != value:
        raise ArgumentError(
            name,
            "must be text without control characters (CR, LF, TAB, NUL, ESC, DEL, C1 "
            f"controls, bidirectional overrides or line separators); got {shown(value)}",
        )
    return value


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
        raise ArgumentError(
            name,
            f"must be an id such as 'a1b2c3d4-...': not empty, '.' or '..', and "
            f"without '/', '\\', whitespace or control characters; got {shown(value)}",
        )
    return value


def check_number(value: object, name: str = "number") -> str | None:
    """Return ``value`` if it is ``None`` or an E.164 phone number, else raise ``ValueError``."""
    if value is None:
        return None
    if not isinstance(value, str) or _E164.fullmatch(value) is None:
        raise ArgumentError(
            name,
            f"must be an E.164 phone number: '+', then 2 to 15 digits not starting "
            f"with 0, e.g. '+12135551234'; got {value!r}",
        )
    return value


def check_country(value: object) -> str:
    """Return an ISO 3166 alpha-2 country code in upper case, else raise ``ValueError``."""
    if not isinstance(value, str) or len(value) != 2 or not value.isascii() or not value.isalpha():
        raise ArgumentError(
            "country", f"must be an ISO 3166 alpha-2 code such as 'US', got {value!r}"
        )
    return value.upper()


def check_int_id(value: object, name: str) -> int | None:
    """Return ``value`` if it is ``None`` or an int id of 0 or more (not a bool).

    Raises:
        ValueError: It is anything else.
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ArgumentError(name, f"must be a non-negative int id, got {value!r}")
    return value


def check_did_type(value: object) -> str | None:
    """Return ``value`` if it is ``None`` or a DID type name Search Number Groups accepts.

    Raises:
        ValueError: It is anything else.
    """
    if value is None:
        return None
    if value not in DID_TYPES:
        raise ArgumentError(
            "did_type", f"must be one of {', '.join(sorted(DID_TYPES))}; got {value!r}"
        )
    return str(value)


def check_digits(value: object, name: str) -> str | None:
    """Return ``value`` if it is ``None`` or 1 to 15 ASCII digits, else raise ``ValueError``."""
    if value is None:
        return None
    if not isinstance(value, str) or not value.isascii() or not value.isdigit() or len(value) > 15:
        raise ArgumentError(name, f"must be 1 to 15 digits such as '555', got {value!r}")
    return value


def check_reservation(group_id: object, number: object) -> None:
    """Check the arguments of a reservation or purchase, else raise ``ValueError``."""
    check_id(group_id, "group_id")
    check_number(number)


def check_base_url(value: object, allow_insecure_http: bool) -> str:
    """Return the base URL without a trailing slash; plain http only to this machine."""
    if not isinstance(value, str) or not value.isprintable() or " " in value:
        raise ArgumentError(
            "base_url",
            f"must be an http(s) URL such as {DEFAULT_BASE_URL!r}, without spaces or "
            f"control characters; got {shown(value)}",
        )
    try:
        url = URL(value)
        host = url.host
    except ValueError:  # yarl's own (UnicodeError included): a bad IPv6 literal, a bad IDN
        host = None
    if host is None or url.scheme not in ("http", "https"):
        raise ArgumentError(
            "base_url", f"must be an http(s) URL such as {DEFAULT_BASE_URL!r}, got {value!r}"
        )
    if url.query_string or url.fragment or url.user or url.password:
        raise ArgumentError("base_url", "must not carry credentials, a query or a fragment.")
    if url.scheme == "http" and not allow_insecure_http and not is_loopback(host):
        raise ArgumentError(
            "base_url",
            f"{value!r} is plain http to another machine: the API key would cross the "
            "network in clear text. Use https.",
            allowed_by="allow_insecure_http",
        )
    return str(url).rstrip("/")


def check_flag(value: object, name: str) -> bool:
    """Return ``value`` if it is a bool, else raise ``ValueError``."""
    if not isinstance(value, bool):
        raise ArgumentError(name, f"must be True or False, got {shown(value)}")
    return value


def check_http_session(value: object, *, mine: tuple[object, ...]) -> None:
    """Check a borrowed ``http_session``; ``mine``: the pool options that exclude one.

    Raises:
        ValueError: It is not an ``aiohttp.ClientSession``, or a pool option is given.
    """
    if value is None:
        return
    if not isinstance(value, aiohttp.ClientSession):
        raise ArgumentError(
            "http_session", f"must be an aiohttp.ClientSession or None, got {shown(value)}"
        )
    if any(option not in (None, False, ()) for option in mine):
        raise ValueError(
            "proxy, trust_env=False, ssl and trace_configs apply to the pool TwoChatSession "
            "creates, not to a borrowed http_session: set them on that aiohttp.ClientSession "
            "instead."
        )


def check_trace_configs(value: object) -> tuple[aiohttp.TraceConfig, ...]:
    """Return the ``trace_configs`` as a tuple.

    Raises:
        ValueError: It is not a list or tuple of ``aiohttp.TraceConfig``.
    """
    if not isinstance(value, (list, tuple)) or not all(
        isinstance(item, aiohttp.TraceConfig) for item in value
    ):
        raise ArgumentError(
            "trace_configs", f"must be a list of aiohttp.TraceConfig, got {shown(value)}"
        )
    return tuple(value)


def check_proxy(value: object) -> URL | None:
    """Return the proxy URL, or raise ``ValueError`` without quoting its credentials."""
    if value is None:
        return None
    try:
        url = URL(value) if isinstance(value, str) and value.isprintable() else None
        host = None if url is None else url.host
    except ValueError:  # yarl's own: a bad port, IPv6 literal or IDN
        url = host = None
    if url is None or host is None or url.scheme != "http" or url.path not in ("", "/"):
        got = "a URL with credentials (not shown)" if "@" in str(value) else shown(value)
        raise ArgumentError(
            "proxy",
            "must be an http:// URL such as 'http://proxy.example:3128', with "
            f"credentials in it if the proxy needs them; got {got}",
        )
    return url


def check_ssl(value: object) -> SSLContext | None:
    """Return ``value`` if it is ``None`` or an ``ssl.SSLContext``, else raise ``ValueError``."""
    if value is None or isinstance(value, SSLContext):
        return value
    raise ArgumentError(
        "ssl",
        "must be an ssl.SSLContext (e.g. ssl.create_default_context(cafile=...)) or None; "
        f"got {shown(value)}. TLS verification cannot be turned off: give a context that "
        "trusts your proxy's or server's certificate authority instead.",
    )


def is_loopback(host: str) -> bool:
    """Return whether ``host`` names this machine."""
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_count(value: int, name: str, *, minimum: int, maximum: int | None = None) -> int:
    """Return ``value`` if it is an int within bounds (not a bool), else raise ``ValueError``."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or value < minimum
        or (maximum is not None and value > maximum)
    ):
        span = f"of at least {minimum}" if maximum is None else f"from {minimum} to {maximum}"
        raise ArgumentError(name, f"must be an int {span}, got {shown(value)}")
    return value


def check_seconds(value: object, name: str) -> float:
    """Return ``value`` as a float if it is finite and positive, else raise ``ValueError``."""
    seconds = finite(value)
    if seconds is None or seconds <= 0:
        raise ArgumentError(
            name, f"must be a finite, positive number of seconds, got {shown(value)}"
        )
    return seconds


def check_timeout(value: float | aiohttp.ClientTimeout) -> aiohttp.ClientTimeout:
    """Return the timeout as an ``aiohttp.ClientTimeout`` whose fields are each valid.

    Its ``total`` must be set: it is what bounds a request as a whole (a ``sock_read``
    alone lets a server that sends a byte now and then hold a call for ever).
    """
    if isinstance(value, aiohttp.ClientTimeout):
        if value.total is None:
            raise ArgumentError(
                "timeout.total",
                "must be a finite, positive number of seconds: it bounds the whole request; "
                "got None (for example aiohttp.ClientTimeout(total=30, sock_read=10))",
            )
        for field in ("total", "connect", "sock_read", "sock_connect"):
            seconds = getattr(value, field)
            if seconds is not None:
                check_seconds(seconds, f"timeout.{field}")
        return value
    return aiohttp.ClientTimeout(total=check_seconds(value, "timeout"))


def check_user_agent(value: object) -> str:
    """Return ``value`` if it can be sent as a header, else raise ``ValueError``."""
    # Printable ASCII only: a header carries bytes, and a CR/LF would split it (injection).
    if isinstance(value, str) and value.strip() and value.isascii() and value.isprintable():
        return value
    raise ArgumentError(
        "user_agent",
        "must be printable ASCII text without CR/LF or control characters, "
        f"such as 'my-app/1.0'; got {shown(value)}",
    )


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
    check_reservation(group_id, number)
    body = {"group_id": group_id} if number is None else {"group_id": group_id, "number": number}
    return encode_json(body)


def held_purchase_body(group_id: str, number: str) -> bytes:
    """Build the purchase body of a number 2Chat reserved, sent back as 2Chat wrote it.

    2Chat may write a number otherwise than in E.164 (``12135551234``, ``+1 213 555 1234``),
    and it is its own: only what cannot be sent as text is refused.

    Raises:
        ValueError: ``number`` is blank or holds control characters (nothing is sent).
    """
    check_id(group_id, "group_id")
    check_id(number, "reservation.number")
    return encode_json({"group_id": group_id, "number": number})


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


class _Refused(ValueError):
    """A JSON value `load_json` does not take."""


def _no_constant(name: str) -> Any:
    raise _Refused(f"{name}, which JSON does not allow")


def _finite_float(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise _Refused(f"the number {text[:40]!r}, beyond a float's range")
    return number


#: How deep an answer's arrays and objects may nest (2Chat's go 4 deep): deeper ones
#: would make errors and records that pickle and copy cannot take (they recurse).
MAX_JSON_DEPTH = 64
_NOT_STRUCTURE = bytes(set(range(256)) - set(b'"[]{}'))
#: An opening bracket as +1 and a closing one as -1 (a signed byte).
_DEPTH_STEPS = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")


def _too_deep(body: bytes) -> bool:
    """Whether the arrays and objects of a (valid) JSON body nest deeper than MAX_JSON_DEPTH.

    Escaped backslashes and quotes go first, so every quote left delimits a string; then
    all but quotes and brackets, then the strings. The depth is the largest running sum of
    the brackets left, +1 for each opening and -1 for each closing one: C loops throughout.
    """
    if body.count(b"[") + body.count(b"{") <= MAX_JSON_DEPTH:
        return False
    bare = body.replace(b"\\\\", b"").replace(b'\\"', b"").translate(None, _NOT_STRUCTURE)
    brackets = b"".join(bare.split(b'"')[::2]).translate(_DEPTH_STEPS)
    return max(itertools.accumulate(array.array("b", brackets))) > MAX_JSON_DEPTH


#: From this size on, the cycle collector is paused while a body is read: JSON builds no
#: cycles, yet a million small arrays trigger collection after collection, each walking
#: every object (the read then takes four times as long, the event loop stalled).
_PAUSE_GC_BYTES = 256 * 1024


#: Made once: json.loads(..., parse_float=...) would build a decoder per call.
_DECODER = json.JSONDecoder(parse_constant=_no_constant, parse_float=_finite_float)


def load_json(body: bytes) -> Any:
    """Read a body as strict JSON: no ``NaN``/``Infinity``, no number beyond a float, no
    nesting deeper than MAX_JSON_DEPTH.

    Raises:
        ValueError: The body is not JSON; its text says why, for a message.
    """
    paused = len(body) >= _PAUSE_GC_BYTES and gc.isenabled()
    if paused:
        gc.disable()
    try:
        # UTF-8, JSON's own encoding (RFC 8259), and a byte order mark it lets us skip.
        value = _DECODER.decode(body.removeprefix(codecs.BOM_UTF8).decode())
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ValueError(f"not JSON: {snippet(body)!r}") from None
    except RecursionError:  # each array or object nests a call
        raise ValueError(f"JSON nested deeper than {MAX_JSON_DEPTH} levels") from None
    except _Refused as exc:
        raise ValueError(f"JSON holding {exc}") from None
    except ValueError as exc:  # int(): more digits than sys.get_int_max_str_digits()
        raise ValueError(f"JSON holding an integer too long to read ({exc})") from None
    finally:
        if paused:
            gc.enable()
    if _too_deep(body):
        raise ValueError(f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
    return value


def parse(
    status: int,
    headers: Mapping[str, str],
    body: bytes,
    unescaped: Callable[[Any], Any] | None = None,
) -> dict[str, Any]:
    """Read a 2Chat answer: the JSON object of a success, or raise its error.

    ``unescaped`` is given the decoded answer of a body with escapes (``\\uXXXX``), to
    return it scrubbed: escapes can hide what the body's bytes were scrubbed of.

    Raises:
        APIError: The status is not 2xx, or the body says ``"success": false``.
        InvalidResponseError: A success whose body is not a JSON object with
            ``"success": true``.
    """
    payload: Any = None
    try:
        payload = load_json(body)
    except ValueError as exc:
        if 200 <= status < 300:
            kind = "an empty body" if not body.strip() else str(exc)
            raise InvalidResponseError(
                f"2Chat answered {describe_status(status)} with {kind}",
                status=status,
                body=snippet(body),
            ) from None
    if unescaped is not None and b"\\" in body:
        payload = unescaped(payload)
    if not 200 <= status < 300 or (isinstance(payload, dict) and payload.get("success") is False):
        raise api_error(status, headers, body, payload)
    if not isinstance(payload, dict):  # shown as decoded: scrubbed after unescaping
        problem = f"JSON that is not an object: {shown(payload)}"
    elif payload.get("success") is not True:
        flag = f"of {shown(payload['success'])}" if "success" in payload else "missing"
        problem = f'its "success" flag {flag}, where a success has true'
    else:
        return payload
    raise InvalidResponseError(
        f"2Chat answered {describe_status(status)} with {problem}", status=status, body=payload
    )


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
    if given and isinstance(value, dict):
        value = {**value, **given}
    try:
        return converter.structure(value, cls)
    except Exception as exc:  # structuring is pure: any failure means the data was bad
        details = field_errors(exc, path)
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


# -- logging ------------------------------------------------------------------------------


def warn(logger: logging.Logger, template: str, *args: object) -> None:
    """Log a WARNING, each argument shown with its control characters escaped.

    The arguments are 2Chat's or Redis's text (a number, a uuid, an error): a CR, LF or
    ESC in them would forge a log line or drive the terminal that shows it.
    """
    # stacklevel: the record names the caller's line, not this one.
    logger.warning(template, *(escape_controls(str(arg)) for arg in args), stacklevel=2)
