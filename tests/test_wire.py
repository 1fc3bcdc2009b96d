"""Plain-call tests of the I/O-free wire layer: validation, bodies, decoding, errors."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from email.utils import format_datetime
from typing import Any

import pytest
from multidict import CIMultiDict

from twochat_async import _wire
from twochat_async.errors import (
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
from twochat_async.models import Reservation

GROUP = "abc-123"
DETAILS = {
    "uuid": "reservation-uuid-here",
    "number": "+12135551234",
    "created_at": "2024-01-15T10:30:00Z",
    "expires_at": "2024-01-15T11:30:00Z",
}


def error_body(message: str) -> bytes:
    """Build 2Chat's documented error envelope around ``message``."""
    return json.dumps({"success": False, "error": True, "error_message": message}).encode()


def reservation_payload(**details: Any) -> dict[str, Any]:
    """Build a reservation success payload with ``details`` as reservation_details."""
    return {"success": True, "data": {"reservation_details": details}}


# --- check_id -------------------------------------------------------------------------


def test_check_id_returns_a_non_blank_string_unchanged() -> None:
    """check_id returns a valid id as given."""
    assert _wire.check_id(" abc-123 ", "group_id") == " abc-123 "


@pytest.mark.parametrize("value", ["", " ", "\t\n"])
def test_check_id_rejects_empty_or_blank_strings(value: str) -> None:
    """check_id raises ValueError naming the argument for an empty or blank string."""
    with pytest.raises(ValueError, match="group_id"):
        _wire.check_id(value, "group_id")


@pytest.mark.parametrize("value", [None, 123, b"abc", ["abc"]])
def test_check_id_rejects_non_strings(value: object) -> None:
    """check_id raises ValueError for anything that is not a str."""
    with pytest.raises(ValueError, match="uuid"):
        _wire.check_id(value, "uuid")


@pytest.mark.parametrize("value", ["\ud800", "abc\udcff", "São\udfffPaulo"])
def test_check_id_rejects_lone_surrogates(value: str) -> None:
    """check_id raises ValueError naming the argument for text UTF-8 cannot carry."""
    with pytest.raises(ValueError, match=r"^city_name_or_prefix .*lone surrogate"):
        _wire.check_id(value, "city_name_or_prefix")


# --- check_path_segment ---------------------------------------------------------------


@pytest.mark.parametrize("value", ["reservation-uuid-here", "a.b", "...", "x?y#z%", "résa"])
def test_check_path_segment_returns_an_id_unchanged(value: str) -> None:
    """check_path_segment returns a usable id as given (quoting is the caller's job)."""
    assert value == _wire.check_path_segment(value, "reservation uuid")


@pytest.mark.parametrize(
    "value",
    [
        ".",
        "..",
        "",
        "a/b",
        "../purchase",
        "a\\b",
        "a b",
        " ",
        "a\tb",
        "a\r\nb",
        "a\x00b",
        "a\x7fb",
        "a\u00a0b",
        "a\u2028b",
        "a\ud800b",
        None,
        5,
    ],
    ids=repr,
)
def test_check_path_segment_rejects_what_would_move_or_break_the_path(value: object) -> None:
    """Dot segments, slashes, backslashes, whitespace, control characters, non-str: ValueError."""
    with pytest.raises(ValueError, match=r"^reservation uuid must be an id"):
        _wire.check_path_segment(value, "reservation uuid")


# --- query and encode_json ------------------------------------------------------------


def test_query_refuses_a_lone_surrogate_naming_the_key() -> None:
    """query() raises ValueError for a value aiohttp would silently drop characters from."""
    params = _wire.query(country="BR", city_name_or_prefix="São Paulo", region_id=7, city_id=None)
    assert params == {"country": "BR", "city_name_or_prefix": "São Paulo", "region_id": "7"}
    with pytest.raises(ValueError, match=r"^city_name_or_prefix .*lone surrogate"):
        _wire.query(country="BR", city_name_or_prefix="S\udcc3o Paulo")


def test_encode_json_refuses_a_lone_surrogate_naming_the_key() -> None:
    """encode_json raises ValueError naming the field, not UnicodeEncodeError."""
    with pytest.raises(ValueError, match=r"^group_id .*lone surrogate"):
        _wire.encode_json({"group_id": "abc\ud800", "number": "+12135551234"})


def test_encode_json_refuses_a_lone_surrogate_in_a_nested_value() -> None:
    """A lone surrogate below the top level still raises ValueError, not UnicodeEncodeError."""
    with pytest.raises(ValueError, match="not valid Unicode text"):
        _wire.encode_json({"group_id": "abc", "tags": ["\ud800"]})


# --- finite and shown -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (80, 80.0),
        (1.5, 1.5),
        (10**300, 1e300),
        (10**400, None),
        (-(10**400), None),
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
    assert expected == _wire.finite(value)


def test_shown_cuts_long_values_and_survives_unprintable_ints() -> None:
    """shown() keeps messages short, even for an int too long for repr()."""
    assert _wire.shown("abc") == "'abc'"
    assert len(_wire.shown("x" * 10_000)) <= _wire.SNIPPET_CHARS + 1
    assert _wire.shown(10**5000) == "<int too long to show>"


# --- check_number ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "number",
    ["+12", "+12135551234", "+" + "1" * 15, "+" + "9" + "0" * 14],
    ids=["2-digits", "typical", "15-digits", "15-digits-zeros"],
)
def test_check_number_accepts_e164(number: str) -> None:
    """check_number returns an E.164 number ('+', 2..15 digits, first not 0) unchanged."""
    assert number == _wire.check_number(number)


@pytest.mark.parametrize(
    "number",
    [
        "+1",
        "+" + "1" * 16,
        "+0123456789",
        "12135551234",
        "+",
        "",
        "+1 213 555 1234",
        "+1-213-555-1234",
        "+12135551234\n",
        " +12135551234",
        "+1213555123x",
        "+" + "\uff11\uff12\uff11\uff13",
    ],
    ids=[
        "1-digit",
        "16-digits",
        "leading-zero",
        "no-plus",
        "plus-only",
        "empty",
        "spaces",
        "dashes",
        "trailing-newline",
        "leading-space",
        "letter",
        "fullwidth-digits",
    ],
)
def test_check_number_rejects_non_e164_strings(number: str) -> None:
    """check_number raises ValueError for strings that are not E.164."""
    with pytest.raises(ValueError, match=r"E\.164"):
        _wire.check_number(number)


@pytest.mark.parametrize("value", [12135551234, b"+12135551234"])
def test_check_number_rejects_non_strings(value: object) -> None:
    """check_number raises ValueError for anything that is not a str."""
    with pytest.raises(ValueError, match=r"E\.164"):
        _wire.check_number(value)


def test_check_number_names_the_argument() -> None:
    """check_number's error names the argument it was given."""
    with pytest.raises(ValueError, match=r"^phone "):
        _wire.check_number("+1", "phone")


# --- reservation_body -----------------------------------------------------------------


def test_reservation_body_without_number_is_group_id_only() -> None:
    """Without a number the body is compact JSON holding only group_id."""
    assert _wire.reservation_body(GROUP, None) == b'{"group_id":"abc-123"}'


def test_reservation_body_with_number() -> None:
    """With a number the body holds group_id then number, compact."""
    expected = b'{"group_id":"abc-123","number":"+12135551234"}'
    assert expected == _wire.reservation_body(GROUP, "+12135551234")


def test_reservation_body_never_sends_null_number() -> None:
    """An omitted number is left out of the body, never sent as null."""
    body = _wire.reservation_body(GROUP, None)
    assert json.loads(body) == {"group_id": GROUP}
    assert b"null" not in body


def test_reservation_body_is_utf8_json() -> None:
    """Non-ASCII ids are encoded as UTF-8, not escaped."""
    assert '{"group_id":"grüppe"}'.encode() == _wire.reservation_body("grüppe", None)


@pytest.mark.parametrize(
    ("group_id", "number", "name"),
    [
        ("", None, "group_id"),
        ("  ", "+12135551234", "group_id"),
        (None, None, "group_id"),
        (GROUP, "12135551234", "number"),
        (GROUP, "", "number"),
        (GROUP, 12135551234, "number"),
    ],
)
def test_reservation_body_rejects_invalid_arguments(
    group_id: object, number: object, name: str
) -> None:
    """Invalid arguments raise ValueError naming the bad one, instead of building a body."""
    with pytest.raises(ValueError, match=name):
        _wire.reservation_body(group_id, number)  # type: ignore[arg-type]


# --- decode: success ------------------------------------------------------------------


@pytest.mark.parametrize("status", [200, 201, 202])
def test_decode_returns_the_json_object_of_a_success(status: int) -> None:
    """A 2xx JSON object is returned as a dict, unchanged."""
    payload = reservation_payload(**DETAILS)
    assert payload == _wire.parse(status, {}, json.dumps(payload).encode())


def test_decode_accepts_a_success_without_the_success_flag() -> None:
    """A 2xx object lacking "success" is still a success (extra/missing fields tolerated)."""
    assert _wire.parse(200, {}, b'{"data": {"x": 1}}') == {"data": {"x": 1}}


# --- decode: the status table ---------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, BadRequestError),
        (401, AuthenticationError),
        (402, PaymentRequiredError),
        (403, PermissionDeniedError),
        (404, NotFoundError),
        (409, ConflictError),
        (422, UnprocessableEntityError),
        (429, RateLimitError),
    ],
)
def test_decode_raises_the_class_of_each_documented_status(status: int, cls: type) -> None:
    """Each documented error status raises its class with .status, .message and .body."""
    body = error_body(f"problem {status}")
    with pytest.raises(APIError) as info:
        _wire.parse(status, {}, body)
    assert cls is type(info.value)
    assert status == info.value.status
    assert f"problem {status}" == info.value.message
    assert json.loads(body) == info.value.body


@pytest.mark.parametrize("status", [500, 502, 503, 504, 599])
def test_decode_raises_server_error_for_5xx(status: int) -> None:
    """Every 5xx status raises ServerError carrying 2Chat's message."""
    with pytest.raises(ServerError) as info:
        _wire.parse(status, {}, error_body("down"))
    assert ServerError is type(info.value)
    assert status == info.value.status
    assert info.value.message == "down"


@pytest.mark.parametrize("status", [406, 410, 486])
def test_decode_raises_plain_api_error_for_unmapped_statuses(status: int) -> None:
    """Error statuses without a class of their own raise a plain APIError."""
    with pytest.raises(APIError) as info:
        _wire.parse(status, {}, error_body("busy"))
    assert APIError is type(info.value)
    assert status == info.value.status
    assert info.value.message == "busy"


@pytest.mark.parametrize("status", [200, 201])
def test_decode_raises_api_error_for_a_2xx_saying_success_false(status: int) -> None:
    """A 2xx whose body says "success": false is an APIError with that 2xx status."""
    with pytest.raises(APIError) as info:
        _wire.parse(status, {}, error_body("no such group"))
    assert APIError is type(info.value)
    assert status == info.value.status
    assert info.value.message == "no such group"


def test_decode_describes_an_error_without_error_message() -> None:
    """An error JSON body without error_message gets a message naming the status."""
    with pytest.raises(NotFoundError) as info:
        _wire.parse(404, {}, b'{"success": false}')
    assert "404 Not Found" in info.value.message
    assert info.value.body == {"success": False}


@pytest.mark.parametrize("message", ["", "   ", 42, None])
def test_decode_ignores_a_blank_or_non_string_error_message(message: object) -> None:
    """A blank or non-string error_message is replaced by a description of the status."""
    body = json.dumps({"success": False, "error_message": message}).encode()
    with pytest.raises(BadRequestError) as info:
        _wire.parse(400, {}, body)
    assert "400 Bad Request" in info.value.message


def test_decode_502_html_is_server_error_with_snippet() -> None:
    """A gateway's HTML 502 is a ServerError quoting the body; .body is the text snippet."""
    html = b"<html><body><h1>502 Bad Gateway</h1></body></html>\n"
    with pytest.raises(ServerError) as info:
        _wire.parse(502, {"Content-Type": "text/html"}, html)
    assert info.value.status == 502
    assert "<h1>502 Bad Gateway</h1>" in info.value.message
    assert "502 Bad Gateway" in str(info.value)
    assert html.decode().strip() == info.value.body


def test_decode_error_with_empty_body_keeps_empty_snippet() -> None:
    """An error with an empty body is described by status; .body is an empty snippet."""
    with pytest.raises(ServerError) as info:
        _wire.parse(503, {}, b"")
    assert "503 Service Unavailable" in info.value.message
    assert info.value.body == ""


def test_decode_redirect_is_an_api_error_about_redirects() -> None:
    """A 302 is an APIError whose message names the target and says redirects aren't followed."""
    headers = {"Location": "https://elsewhere.example/open"}
    with pytest.raises(APIError) as info:
        _wire.parse(302, headers, b"")
    assert APIError is type(info.value)
    assert info.value.status == 302
    assert "redirect" in info.value.message
    assert "https://elsewhere.example/open" in info.value.message


# --- decode: undecodable successes ----------------------------------------------------


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"<html>ok</html>", "not JSON"),
        (b"", "empty body"),
        (b"  \n", "empty body"),
        (b"\xff\xfe\x00", "not JSON"),
    ],
    ids=["html", "empty", "whitespace", "bad-utf8"],
)
def test_decode_non_json_success_is_invalid_response(body: bytes, fragment: str) -> None:
    """A 2xx body that is not JSON raises InvalidResponseError with the status."""
    with pytest.raises(InvalidResponseError) as info:
        _wire.parse(201, {}, body)
    assert info.value.status == 201
    assert fragment in str(info.value)
    assert isinstance(info.value.body, str)


@pytest.mark.parametrize("body", [b"[1, 2]", b"null", b'"ok"', b"3"])
def test_decode_non_object_json_success_is_invalid_response(body: bytes) -> None:
    """A 2xx JSON value that is not an object raises InvalidResponseError with the status."""
    with pytest.raises(InvalidResponseError) as info:
        _wire.parse(201, {}, body)
    assert info.value.status == 201
    assert "not an object" in str(info.value)
    assert json.loads(body) == info.value.body


# --- Retry-After ----------------------------------------------------------------------


def rate_limited(headers: Any) -> RateLimitError:
    """Decode a 429 with ``headers`` and return the RateLimitError raised."""
    with pytest.raises(RateLimitError) as info:
        _wire.parse(429, headers, error_body("slow down"))
    return info.value


def test_retry_after_in_seconds() -> None:
    """Retry-After given in seconds becomes RateLimitError.retry_after."""
    assert rate_limited({"Retry-After": "30"}).retry_after == 30.0


def test_retry_after_header_name_is_case_insensitive_with_aiohttp_headers() -> None:
    """A lower-case retry-after in aiohttp's CIMultiDict headers is found."""
    assert rate_limited(CIMultiDict({"retry-after": "5"})).retry_after == 5.0


def test_retry_after_as_http_date() -> None:
    """Retry-After given as an HTTP-date becomes the seconds until that date."""
    when = datetime.now(timezone.utc) + timedelta(seconds=120)
    error = rate_limited({"Retry-After": format_datetime(when, usegmt=True)})
    assert pytest.approx(120, abs=5) == error.retry_after


@pytest.mark.parametrize("headers", [{}, {"Retry-After": ""}, {"Retry-After": "soon"}])
def test_retry_after_missing_or_garbage_is_none(headers: dict[str, str]) -> None:
    """A missing or unparsable Retry-After leaves retry_after None."""
    assert rate_limited(headers).retry_after is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [("120", 120.0), (" 7 ", 7.0), ("0", 0.0), ("1.5", 1.5)],
)
def test_parse_retry_after_seconds(value: str, expected: float) -> None:
    """parse_retry_after reads delay-seconds."""
    assert expected == _wire.parse_retry_after(value)


def test_parse_retry_after_future_http_date() -> None:
    """parse_retry_after turns a future HTTP-date into the seconds left."""
    when = datetime.now(timezone.utc) + timedelta(seconds=300)
    assert pytest.approx(300, abs=5) == _wire.parse_retry_after(format_datetime(when, usegmt=True))


def test_parse_retry_after_past_http_date_is_zero() -> None:
    """parse_retry_after clamps an HTTP-date in the past to 0 seconds."""
    assert _wire.parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0


@pytest.mark.parametrize(
    "value", [None, "", "   ", "soon", "Wed, 99 Foo 2015", "nan", "inf", "-inf"]
)
def test_parse_retry_after_garbage_is_none(value: str | None) -> None:
    """parse_retry_after returns None for a missing, unparsable or non-finite value."""
    assert _wire.parse_retry_after(value) is None


@pytest.mark.parametrize(
    "value",
    ["1_0", "1e3", "1E1", "+5", "-5", ".5", "1.", "\u0661\u0660", "\uff15", "\u0665.5"],
    ids=repr,
)
def test_parse_retry_after_takes_only_ascii_digits(value: str) -> None:
    """Underscores, exponents, signs and other scripts' digits are garbage: None, not a wait."""
    assert _wire.parse_retry_after(value) is None


@pytest.mark.parametrize(
    "value",
    [
        "Wed, 21 Oct 2015 07:28:00 +99999999999999999999",
        "Wed, 21 Oct 2015 99999999999999999999:28:00 GMT",
        "Wed, 99999999999999999999 Oct 2015 07:28:00 GMT",
    ],
)
def test_parse_retry_after_date_with_huge_fields_is_none(value: str) -> None:
    """An HTTP-date with fields too large for the C datetime is garbage, not an OverflowError."""
    assert _wire.parse_retry_after(value) is None


def test_decode_429_with_a_huge_date_is_a_rate_limit_error() -> None:
    """A 429 whose Retry-After overflows the date parser still raises RateLimitError."""
    headers = {"Retry-After": "Wed, 21 Oct 2015 07:28:00 +99999999999999999999"}
    assert rate_limited(headers).retry_after is None


# --- snippet / describe_status --------------------------------------------------------


def test_snippet_keeps_a_short_body_whole_and_stripped() -> None:
    """A body within the limit is returned whole, without surrounding whitespace."""
    assert _wire.snippet(b"  \nBad Gateway\n  ") == "Bad Gateway"


def test_snippet_at_the_limit_is_not_marked_truncated() -> None:
    """A body of exactly SNIPPET_CHARS characters is returned without an ellipsis."""
    text = "x" * _wire.SNIPPET_CHARS
    assert text == _wire.snippet(text.encode())


def test_snippet_truncates_a_long_body_with_ellipsis() -> None:
    """A body over SNIPPET_CHARS characters is cut to SNIPPET_CHARS plus an ellipsis."""
    body = b"a" * (_wire.SNIPPET_CHARS + 1)
    assert _wire.snippet(body) == "a" * _wire.SNIPPET_CHARS + "…"


def test_snippet_counts_characters_not_bytes() -> None:
    """Multi-byte text is truncated at SNIPPET_CHARS characters, not bytes."""
    body = ("é" * 300).encode()
    assert _wire.snippet(body) == "é" * _wire.SNIPPET_CHARS + "…"


def test_snippet_marks_truncation_of_wide_characters() -> None:
    """A long body of 4-byte characters is shown with an ellipsis, as it was cut."""
    body = ("😀" * 300).encode()
    assert _wire.snippet(body) == "😀" * _wire.SNIPPET_CHARS + "…"


def test_snippet_replaces_invalid_utf8() -> None:
    """Invalid UTF-8 is shown as replacement characters instead of raising."""
    assert _wire.snippet(b"ok\xff") == "ok\ufffd"


def test_decode_error_message_uses_truncated_snippet() -> None:
    """A huge non-JSON error body is quoted only as a truncated snippet."""
    with pytest.raises(ServerError) as info:
        _wire.parse(500, {}, b"E" * 10_000)
    assert info.value.body == "E" * _wire.SNIPPET_CHARS + "…"
    assert "E" * (_wire.SNIPPET_CHARS + 1) not in info.value.message


@pytest.mark.parametrize(("status", "expected"), [(404, "404 Not Found"), (599, "599")])
def test_describe_status(status: int, expected: str) -> None:
    """describe_status gives the reason phrase when the status has one."""
    assert expected == _wire.describe_status(status)


# --- decode_reservation ---------------------------------------------------------------


def test_decode_reservation_builds_the_record_with_group_id() -> None:
    """A valid reservation payload becomes a Reservation with the asked group_id filled in."""
    expected = Reservation(
        uuid="reservation-uuid-here",
        number="+12135551234",
        created_at=datetime(2024, 1, 15, 10, 30, tzinfo=timezone.utc),
        expires_at=datetime(2024, 1, 15, 11, 30, tzinfo=timezone.utc),
        group_id=GROUP,
    )
    actual = _wire.decode(
        reservation_payload(**DETAILS),
        "$.data.reservation_details",
        Reservation,
        status=201,
        group_id=GROUP,
    )
    assert expected == actual


def test_decode_reservation_ignores_unknown_fields() -> None:
    """Unknown extra fields anywhere in the payload are ignored."""
    payload = {
        "success": True,
        "extra": 1,
        "data": {"other": [1], "reservation_details": {**DETAILS, "price": "3.50", "x": None}},
    }
    reservation = _wire.decode(
        payload, "$.data.reservation_details", Reservation, status=201, group_id=GROUP
    )
    assert reservation.uuid == "reservation-uuid-here"


def test_decode_reservation_group_id_is_the_one_asked_for() -> None:
    """The group asked for wins over a group_id 2Chat may send in the details."""
    payload = reservation_payload(**DETAILS, group_id="other-group")
    assert (
        _wire.decode(
            payload, "$.data.reservation_details", Reservation, status=201, group_id=GROUP
        ).group_id
        == GROUP
    )


def test_decode_reservation_does_not_mutate_the_payload() -> None:
    """Filling in group_id leaves the caller's payload unchanged."""
    payload = reservation_payload(**DETAILS)
    _wire.decode(payload, "$.data.reservation_details", Reservation, status=201, group_id=GROUP)
    assert reservation_payload(**DETAILS) == payload


@pytest.mark.parametrize(
    ("payload", "path"),
    [
        (
            reservation_payload(**{k: v for k, v in DETAILS.items() if k != "expires_at"}),
            "$.data.reservation_details.expires_at",
        ),
        (reservation_payload(**{**DETAILS, "uuid": 42}), "$.data.reservation_details.uuid"),
        (
            reservation_payload(**{**DETAILS, "created_at": "yesterday"}),
            "$.data.reservation_details.created_at",
        ),
        ({"success": True, "data": [DETAILS]}, "$.data.reservation_details"),
        ({"success": True, "data": "nope"}, "$.data.reservation_details"),
        ({"success": True, "data": {}}, "$.data.reservation_details"),
        ({"success": True}, "$.data"),
    ],
    ids=[
        "missing-expires_at",
        "int-uuid",
        "bad-created_at",
        "data-list",
        "data-string",
        "details-missing",
        "data-missing",
    ],
)
def test_decode_reservation_invalid_payload_names_the_path(
    payload: dict[str, Any], path: str
) -> None:
    """A malformed reservation raises InvalidResponseError whose message names the JSON path."""
    with pytest.raises(InvalidResponseError) as info:
        _wire.decode(payload, "$.data.reservation_details", Reservation, status=201, group_id=GROUP)
    assert info.value.status == 201
    assert path in str(info.value)


@pytest.mark.parametrize("details", [None, "x", [DETAILS], 3], ids=["null", "str", "list", "int"])
def test_decode_reservation_non_object_details_names_the_path(details: object) -> None:
    """reservation_details that is not an object raises InvalidResponseError naming its path."""
    payload = {"success": True, "data": {"reservation_details": details}}
    with pytest.raises(InvalidResponseError) as info:
        _wire.decode(payload, "$.data.reservation_details", Reservation, status=201, group_id=GROUP)
    assert info.value.status == 201
    assert "$.data.reservation_details" in str(info.value)


# --- decode_account_limit -------------------------------------------------------------


@pytest.mark.parametrize(("rate", "expected"), [(80, 80.0), (1, 1.0), (30.5, 30.5)])
def test_decode_account_limit_returns_the_rate_as_a_float(rate: object, expected: float) -> None:
    """decode_account_limit reads limits.requests_per_minute of GET /open/info."""
    payload = {"success": True, "limits": {"requests_per_minute": rate}}
    assert expected == _wire.decode_account_limit(payload, status=200)


@pytest.mark.parametrize(
    "rate",
    [0, 0.5, 1e-300, -80, "80", True, None, [80], float("inf"), float("nan"), 10**400],
    ids=["0", "0.5", "1e-300", "-80", "'80'", "True", "None", "list", "inf", "nan", "10**400"],
)
def test_decode_account_limit_refuses_what_is_not_a_finite_number_of_at_least_one(
    rate: object,
) -> None:
    """A requests_per_minute that is not a finite number >= 1 is an InvalidResponseError."""
    payload = {"success": True, "limits": {"requests_per_minute": rate}}
    with pytest.raises(InvalidResponseError, match=r"limits\.requests_per_minute") as info:
        _wire.decode_account_limit(payload, status=200)
    assert info.value.status == 200
    assert info.value.body == payload


def test_decode_account_limit_without_limits_names_the_path() -> None:
    """An /open/info answer without limits raises InvalidResponseError naming $.limits."""
    with pytest.raises(InvalidResponseError, match=r"\$\.limits"):
        _wire.decode_account_limit({"success": True}, status=200)
