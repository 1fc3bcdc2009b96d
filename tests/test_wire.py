"""The I/O-free wire layer, with plain calls: arguments, bodies, answers, the retry decision."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from email.utils import format_datetime
from typing import Any

import attrs
import pytest
from conftest import envelope
from hypothesis import given, settings
from hypothesis import strategies as st
from multidict import CIMultiDict

from twochat_async import (
    AccountInfo,
    APIConnectionError,
    APIError,
    APITimeoutError,
    AuthenticationError,
    AvailableNumber,
    BadRequestError,
    City,
    ConflictError,
    DidType,
    InvalidResponseError,
    NotFoundError,
    NumberGroup,
    PaymentRequiredError,
    PermissionDeniedError,
    RateLimitError,
    Region,
    Reservation,
    ServerError,
    TwoChatError,
    UnprocessableEntityError,
    _wire,
)

GROUP = "abc-123"
T0 = datetime(2024, 1, 15, 10, 30, tzinfo=timezone.utc)
DETAILS = {
    "uuid": "reservation-uuid-here",
    "number": "+12135551234",
    "created_at": "2024-01-15T10:30:00Z",
    "expires_at": "2024-01-15T11:30:00Z",
}
DOC_RESERVATION = Reservation("reservation-uuid-here", "+12135551234", T0, T0 + timedelta(hours=1))


def error_body(message: str) -> bytes:
    """2Chat's error envelope around ``message``, as bytes on the wire."""
    return json.dumps(envelope(message)).encode()


def ok(data: Any, **extra: Any) -> dict[str, Any]:
    """A success answer carrying ``data``, as `_wire.parse` returns it."""
    return {"success": True, "data": data, **extra}


def without(mapping: dict[str, Any], *path: str) -> dict[str, Any]:
    """Return ``mapping`` with the key at ``path`` removed (nested objects are copied)."""
    copy = dict(mapping)
    if len(path) == 1:
        del copy[path[0]]
    else:
        copy[path[0]] = without(copy[path[0]], *path[1:])
    return copy


def wire_group(**changes: Any) -> dict[str, Any]:
    """The documented Los Angeles group as 2Chat sends it, with ``changes``."""
    return {
        "id": "abc-123",
        "prefix": "+1 (213)",
        "location": "Los Angeles",
        "price": {"setup_price": "0.00", "monthly_price": "3.50"},
        "type": "local",
        "requirements": [],
        "allow_number_selection": True,
        "is_eligible_for_free_number": False,
        "features": ["voice", "sms_in", "sms_out", "whatsapp_business"],
        **changes,
    }


LOS_ANGELES = NumberGroup(
    id="abc-123",
    prefix="+1 (213)",
    location="Los Angeles",
    setup_price=Decimal("0.00"),
    monthly_price=Decimal("3.50"),
    type="local",
    requirements=(),
    allow_number_selection=True,
    is_eligible_for_free_number=False,
    features=frozenset({"voice", "sms_in", "sms_out", "whatsapp_business"}),
)


def wire_info() -> dict[str, Any]:
    """2Chat's documented answer of GET /open/info."""
    return {
        "success": True,
        "account": {
            "name": "Account Name (ACC91be)",
            "uuid": "ACC91be",
            "on_trial": False,
            "blocked": False,
            "created_at": "2022-04-21T21:55:37Z",
            "expires_at": "2024-08-31T19:11:08Z",
        },
        "limits": {"requests_per_minute": 80},
        "usage": {
            "api_request_count": 77112,
            "max_api_request_count": 500000,
            "number_check_count": 430542,
            "max_number_check_count": 500000,
        },
    }


# -- arguments ----------------------------------------------------------------------------


def test_check_id_returns_a_non_blank_string_unchanged() -> None:
    """check_id returns a valid id as given."""
    assert _wire.check_id(" abc-123 ", "group_id") == " abc-123 "


@pytest.mark.parametrize("value", ["", " ", "\t\n", None, 123, b"abc", ["abc"]], ids=repr)
def test_check_id_refuses_what_is_not_non_blank_text(value: object) -> None:
    """check_id raises ValueError naming the argument for a blank string or a non-string."""
    with pytest.raises(ValueError, match=r"^group_id must be a non-empty string"):
        _wire.check_id(value, "group_id")


@pytest.mark.parametrize("value", ["\ud800", "abc\udcff", "São\udfffPaulo"], ids=repr)
def test_text_with_a_lone_surrogate_is_refused(value: str) -> None:
    """check_id, query() and encode_json() name the argument UTF-8 cannot carry."""
    with pytest.raises(ValueError, match=r"^city_name_or_prefix .*lone surrogate"):
        _wire.check_id(value, "city_name_or_prefix")
    with pytest.raises(ValueError, match=r"^city_name_or_prefix .*lone surrogate"):
        _wire.query(country="BR", city_name_or_prefix=value)
    with pytest.raises(ValueError, match=r"^city_name_or_prefix .*lone surrogate"):
        _wire.encode_json({"country": "BR", "city_name_or_prefix": value})


def test_check_text_passes_none_through_and_checks_the_rest() -> None:
    """check_text, for optional text, returns None as is and checks anything else as an id."""
    assert _wire.check_text(None, "city_name_or_prefix") is None
    assert _wire.check_text("Los", "city_name_or_prefix") == "Los"
    with pytest.raises(ValueError, match=r"^city_name_or_prefix"):
        _wire.check_text(" ", "city_name_or_prefix")


@pytest.mark.parametrize("value", ["reservation-uuid-here", "a.b", "...", "x?y#z%", "résa"])
def test_check_path_segment_returns_an_id_unchanged(value: str) -> None:
    """check_path_segment returns a usable id as given (quoting is the caller's job)."""
    assert value == _wire.check_path_segment(value, "reservation uuid")


@pytest.mark.parametrize(
    "value",
    [
        *[".", "..", "", "a/b", "../purchase", "a\\b", "a b", " ", "a\tb", "a\r\nb", "a\x00b"],
        *["a\x7fb", "a\u00a0b", "a\u2028b", "a\ud800b", "abc\n", None, 5],
    ],
    ids=repr,
)
def test_check_path_segment_refuses_what_would_move_or_break_the_path(value: object) -> None:
    """Dot segments, slashes, backslashes, whitespace, control characters, non-str: ValueError."""
    with pytest.raises(ValueError, match=r"^reservation uuid must be an id"):
        _wire.check_path_segment(value, "reservation uuid")


@pytest.mark.parametrize(
    "number",
    ["+12", "+12135551234", "+" + "1" * 15, "+" + "9" + "0" * 14, None],
    ids=["2-digits", "typical", "15-digits", "15-digits-zeros", "none"],
)
def test_check_number_accepts_e164_or_none(number: str | None) -> None:
    """check_number returns an E.164 number ('+', 2..15 digits, first not 0), or None, as is."""
    assert number == _wire.check_number(number)


@pytest.mark.parametrize(
    "number",
    [
        *["+1", "+" + "1" * 16, "+0123456789", "12135551234", "+", "", "+1 213 555 1234"],
        *["+1-213-555-1234", "+12135551234\n", " +12135551234", "+1213555123x"],
        *["+" + "\uff11\uff12\uff11\uff13", 12135551234, b"+12135551234"],
    ],
    ids=repr,
)
def test_check_number_refuses_what_is_not_e164(number: object) -> None:
    """check_number raises ValueError naming the argument for anything but E.164 text."""
    with pytest.raises(ValueError, match=r"^phone must be an E\.164 phone number"):
        _wire.check_number(number, "phone")


@pytest.mark.parametrize(("value", "expected"), [("us", "US"), ("De", "DE"), ("BR", "BR")])
def test_check_country_upper_cases_two_ascii_letters(value: str, expected: str) -> None:
    """check_country returns the code in upper case, whatever case it was given in."""
    assert expected == _wire.check_country(value)


@pytest.mark.parametrize("value", ["USA", "U1", "", "ÜS", 1, None], ids=repr)
def test_check_country_refuses_what_is_not_two_ascii_letters(value: object) -> None:
    """check_country raises ValueError for anything but an ISO 3166 alpha-2 code."""
    with pytest.raises(ValueError, match=r"^country must be an ISO 3166 alpha-2 code"):
        _wire.check_country(value)


@pytest.mark.parametrize("value", [0, 123, None])
def test_check_int_id_accepts_ints_from_zero_and_none(value: int | None) -> None:
    """check_int_id returns an int id of 0 or more, or None, as is."""
    assert value == _wire.check_int_id(value, "region_id")


@pytest.mark.parametrize("value", [True, False, "123", -1, 1.0], ids=repr)
def test_check_int_id_refuses_bools_strings_negatives_and_floats(value: object) -> None:
    """check_int_id raises ValueError naming the argument for anything but an int >= 0."""
    with pytest.raises(ValueError, match=r"^region_id must be a non-negative int id"):
        _wire.check_int_id(value, "region_id")


@pytest.mark.parametrize("value", sorted(_wire.DID_TYPES))
def test_check_did_type_accepts_the_documented_names(value: str) -> None:
    """check_did_type returns each name Search Number Groups documents."""
    assert value == _wire.check_did_type(value)
    assert _wire.check_did_type(None) is None


@pytest.mark.parametrize("value", ["premium", "toll-free", "", "LOCAL", 1], ids=repr)
def test_check_did_type_refuses_other_values(value: object) -> None:
    """check_did_type raises ValueError listing the accepted names."""
    with pytest.raises(ValueError, match=r"^did_type must be one of all, global, local"):
        _wire.check_did_type(value)


@pytest.mark.parametrize("value", ["555", "0", "1" * 15, None])
def test_check_digits_accepts_1_to_15_ascii_digits(value: str | None) -> None:
    """check_digits returns 1 to 15 ASCII digits, or None, as is."""
    assert value == _wire.check_digits(value, "number_contains")


@pytest.mark.parametrize(
    "value", ["55a", "+555", "", "1" * 16, "\uff15\uff15\uff15", "\u0665", 555], ids=repr
)
def test_check_digits_refuses_anything_else(value: object) -> None:
    """Letters, a plus, nothing, too many digits, other scripts' digits, an int: ValueError."""
    with pytest.raises(ValueError, match=r"^number_contains must be 1 to 15 digits"):
        _wire.check_digits(value, "number_contains")


def test_query_leaves_out_none_and_sends_ints_as_text() -> None:
    """query() drops None values and turns ints into their decimal text."""
    params = _wire.query(country="BR", city_name_or_prefix="São Paulo", region_id=7, city_id=None)
    assert params == {"country": "BR", "city_name_or_prefix": "São Paulo", "region_id": "7"}


# -- bodies -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("group_id", "number", "expected"),
    [
        ("abc-123", None, b'{"group_id":"abc-123"}'),
        ("abc-123", "+12135551234", b'{"group_id":"abc-123","number":"+12135551234"}'),
        ("grüppe", None, '{"group_id":"grüppe"}'.encode()),
    ],
    ids=["group-only", "with-number", "utf8"],
)
def test_reservation_body_is_compact_utf8_json(
    group_id: str, number: str | None, expected: bytes
) -> None:
    """The body is compact UTF-8 JSON: group_id, then number when given, never "number": null."""
    assert expected == _wire.reservation_body(group_id, number)


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
def test_reservation_body_refuses_invalid_arguments(
    group_id: object, number: object, name: str
) -> None:
    """Invalid arguments raise ValueError naming the bad one, instead of building a body."""
    with pytest.raises(ValueError, match=f"^{name} must be"):
        _wire.reservation_body(group_id, number)  # type: ignore[arg-type]


def test_encode_json_refuses_a_lone_surrogate_in_a_nested_value() -> None:
    """A lone surrogate below the top level still raises ValueError, not UnicodeEncodeError."""
    with pytest.raises(ValueError, match="not valid Unicode text"):
        _wire.encode_json({"group_id": "abc", "tags": ["\ud800"]})


# -- answers: parse -----------------------------------------------------------------------


@pytest.mark.parametrize("status", [200, 201, 202])
def test_parse_returns_the_json_object_of_a_success(status: int) -> None:
    """A 2xx JSON object is returned as a dict, unchanged."""
    payload = ok({"reservation_details": DETAILS})
    assert payload == _wire.parse(status, {}, json.dumps(payload).encode())


def test_parse_skips_one_utf8_byte_order_mark_and_no_more() -> None:
    """A body led by UTF-8's byte order mark is read (RFC 8259 lets a parser skip it);
    a second one is not JSON."""
    body = json.dumps(ok({"reservation_details": DETAILS})).encode()
    assert _wire.parse(201, {}, b"\xef\xbb\xbf" + body) == json.loads(body)
    with pytest.raises(InvalidResponseError, match="not JSON"):
        _wire.parse(201, {}, b"\xef\xbb\xbf" * 2 + body)


@pytest.mark.parametrize(
    ("body", "shown"),
    [
        (b'{"data": {"x": 1}}', "missing"),
        (b'{"success": "false"}', "of 'false'"),
        (b'{"success": 0}', "of 0"),
        (b'{"success": null}', "of None"),
        (b'{"success": 1}', "of 1"),
    ],
    ids=["missing", "string", "zero", "null", "one"],
)
def test_parse_takes_only_a_json_true_success_flag_as_success(body: bytes, shown: str) -> None:
    """A 2xx whose "success" is anything but JSON true is InvalidResponseError, not a success."""
    with pytest.raises(InvalidResponseError, match=f'"success" flag {shown}, where') as info:
        _wire.parse(200, {}, body)
    assert info.value.body == json.loads(body)


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
def test_parse_refuses_a_success_that_is_not_json(body: bytes, fragment: str) -> None:
    """A 2xx body that is not JSON raises InvalidResponseError with the status and a snippet."""
    with pytest.raises(InvalidResponseError, match=fragment) as info:
        _wire.parse(201, {}, body)
    assert info.value.status == 201
    assert body.decode("utf-8", "replace").strip() == info.value.body


@pytest.mark.parametrize("body", [b"[1, 2]", b"null", b'"ok"', b"3"])
def test_parse_refuses_a_success_that_is_not_an_object(body: bytes) -> None:
    """A 2xx JSON value that is not an object raises InvalidResponseError with the value."""
    with pytest.raises(InvalidResponseError, match="not an object") as info:
        _wire.parse(201, {}, body)
    assert info.value.status == 201
    assert json.loads(body) == info.value.body


# -- answers: errors ----------------------------------------------------------------------

#: Every documented status, and the ones around them: the class each one raises.
STATUS_CLASSES: dict[int, type[APIError]] = {
    200: APIError,  # a 2xx saying "success": false
    201: APIError,
    302: APIError,
    400: BadRequestError,
    401: AuthenticationError,
    402: PaymentRequiredError,
    403: PermissionDeniedError,
    404: NotFoundError,
    405: APIError,
    406: APIError,
    409: ConflictError,
    410: APIError,
    418: APIError,
    422: UnprocessableEntityError,
    429: RateLimitError,
    486: APIError,
    499: APIError,
    500: ServerError,
    501: ServerError,
    502: ServerError,
    503: ServerError,
    504: ServerError,
    599: ServerError,
}


@pytest.mark.parametrize(("status", "cls"), STATUS_CLASSES.items())
def test_each_status_maps_to_its_error_class(status: int, cls: type[APIError]) -> None:
    """error_class() and an error answer of that status give the same class, exactly."""
    assert cls is _wire.error_class(status)
    body = error_body(f"problem {status}")
    with pytest.raises(APIError) as info:
        _wire.parse(status, {}, body)
    assert cls is type(info.value)
    assert (status, f"problem {status}", json.loads(body)) == (
        info.value.status,
        info.value.message,
        info.value.body,
    )
    assert f"HTTP {status}: problem {status}" == str(info.value)


def test_status_table_is_exactly_the_documented_4xx_classes() -> None:
    """STATUS_ERRORS holds the eight 4xx statuses with a class of their own, nothing else."""
    own = {status: cls for status, cls in STATUS_CLASSES.items() if status < 500}
    assert {s: c for s, c in own.items() if c is not APIError} == _wire.STATUS_ERRORS


def test_an_error_without_error_message_is_described_by_its_status() -> None:
    """An error JSON body without error_message gets a message naming the status."""
    with pytest.raises(NotFoundError, match="404 Not Found") as info:
        _wire.parse(404, {}, b'{"success": false}')
    assert info.value.body == {"success": False}


@pytest.mark.parametrize("message", ["", "   ", 42, None])
def test_a_blank_or_non_string_error_message_is_replaced(message: object) -> None:
    """A blank or non-string error_message is replaced by a description of the status."""
    body = json.dumps({"success": False, "error_message": message}).encode()
    with pytest.raises(BadRequestError, match="400 Bad Request"):
        _wire.parse(400, {}, body)


def test_an_html_gateway_page_is_a_server_error_quoting_it() -> None:
    """A gateway's HTML 502 is a ServerError quoting the body; .body is the text snippet."""
    html = b"<html><body><h1>502 Bad Gateway</h1></body></html>\n"
    with pytest.raises(ServerError) as info:
        _wire.parse(502, {"Content-Type": "text/html"}, html)
    assert "<h1>502 Bad Gateway</h1>" in info.value.message
    assert html.decode().strip() == info.value.body


def test_an_error_with_an_empty_body_keeps_an_empty_snippet() -> None:
    """An error with an empty body is described by its status; .body is ''."""
    with pytest.raises(ServerError, match="503 Service Unavailable") as info:
        _wire.parse(503, {}, b"")
    assert info.value.body == ""


def test_a_huge_error_body_is_quoted_only_as_a_snippet() -> None:
    """A huge non-JSON error body is kept and quoted cut to SNIPPET_CHARS."""
    with pytest.raises(ServerError) as info:
        _wire.parse(500, {}, b"E" * 10_000)
    assert info.value.body == "E" * _wire.SNIPPET_CHARS + "…"
    assert "E" * (_wire.SNIPPET_CHARS + 1) not in info.value.message


def test_a_redirect_is_an_api_error_naming_its_target() -> None:
    """A 302 is an APIError whose message names the target and says redirects aren't followed."""
    headers = {"Location": "https://elsewhere.example/open"}
    with pytest.raises(APIError, match="redirect") as info:
        _wire.parse(302, headers, b"")
    assert "https://elsewhere.example/open" in info.value.message


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Retry-After": "30"}, 30.0),
        (CIMultiDict({"retry-after": "5"}), 5.0),
        ({}, None),
        ({"Retry-After": "soon"}, None),
        ({"Retry-After": "Wed, 21 Oct 2015 07:28:00 +99999999999999999999"}, None),
    ],
    ids=["seconds", "aiohttp-headers-any-case", "none", "garbage", "overflowing-date"],
)
def test_an_error_carries_retry_after(headers: Any, expected: float | None) -> None:
    """An error answer's Retry-After header becomes .retry_after (None when unusable)."""
    with pytest.raises(RateLimitError) as info:
        _wire.parse(429, headers, error_body("slow down"))
    assert expected == info.value.retry_after


@pytest.mark.parametrize(
    ("value", "expected"),
    [("120", 120.0), (" 7 ", 7.0), ("0", 0.0), ("1.5", 1.5)],
)
def test_parse_retry_after_reads_delay_seconds(value: str, expected: float) -> None:
    """parse_retry_after reads ASCII delay-seconds, with an optional fraction."""
    assert expected == _wire.parse_retry_after(value)


def test_parse_retry_after_reads_an_http_date() -> None:
    """A future HTTP-date is the seconds left until it; a past one is 0."""
    when = datetime.now(timezone.utc) + timedelta(seconds=300)
    assert pytest.approx(300, abs=5) == _wire.parse_retry_after(format_datetime(when, usegmt=True))
    assert _wire.parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0


@pytest.mark.parametrize(
    "value",
    [
        *[None, "", "   ", "soon", "Wed, 99 Foo 2015", "nan", "inf", "-inf"],
        *["1_0", "1e3", "1E1", "+5", "-5", ".5", "1.", "\u0661\u0660", "\uff15", "\u0665.5"],
        "Wed, 21 Oct 2015 07:28:00 +99999999999999999999",
        "Wed, 21 Oct 2015 99999999999999999999:28:00 GMT",
        "Wed, 99999999999999999999 Oct 2015 07:28:00 GMT",
    ],
    ids=repr,
)
def test_parse_retry_after_is_none_for_anything_else(value: str | None) -> None:
    """Missing, unparsable, non-finite, non-ASCII-digit or overflowing values are None."""
    assert _wire.parse_retry_after(value) is None


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b"  \nBad Gateway\n  ", "Bad Gateway"),
        (b"x" * 200, "x" * 200),
        (b"a" * 201, "a" * 200 + "…"),
        (("é" * 300).encode(), "é" * 200 + "…"),
        (("😀" * 300).encode(), "😀" * 200 + "…"),
        (b"ok\xff", "ok\ufffd"),
    ],
    ids=["stripped", "at-the-limit", "over-the-limit", "2-byte-chars", "4-byte-chars", "bad-utf8"],
)
def test_snippet_keeps_the_start_of_a_body_as_text(body: bytes, expected: str) -> None:
    """snippet() strips, counts characters not bytes, marks a cut with '…', never raises."""
    assert expected == _wire.snippet(body)


@pytest.mark.parametrize(("status", "expected"), [(404, "404 Not Found"), (599, "599")])
def test_describe_status(status: int, expected: str) -> None:
    """describe_status gives the reason phrase when the status has one."""
    assert expected == _wire.describe_status(status)


# -- answers: the decode door -------------------------------------------------------------


def test_decode_builds_a_reservation_of_the_group_asked_for() -> None:
    """A reservation answer becomes a Reservation of the group given, whatever 2Chat says."""
    payload = ok({"reservation_details": {**DETAILS, "group_id": 42}})
    path = "$.data.reservation_details"
    reservation = _wire.decode(payload, path, Reservation, status=201, group_id=GROUP)
    assert attrs.evolve(DOC_RESERVATION, group_id=GROUP) == reservation
    assert ok({"reservation_details": {**DETAILS, "group_id": 42}}) == payload  # not mutated


DECODED: dict[str, tuple[dict[str, Any], str, Any, Any]] = {
    "regions": (
        ok({"regions": [{"id": 123, "region_name": "California", "iso_country_code": "US"}]}),
        "$.data.regions",
        list[Region],
        [Region(123, "California", "US")],
    ),
    "cities": (
        ok({"cities": [{"id": 456, "city_name": "Los Angeles", "iso_country_code": "US"}]}),
        "$.data.cities",
        list[City],
        [City(456, "Los Angeles", "US")],
    ),
    "did-types": (
        ok({"did_types": [{"id": 1, "name": "local"}]}),
        "$.data.did_types",
        list[DidType],
        [DidType(1, "local")],
    ),
    "groups": (ok({"groups": [wire_group()]}), "$.data.groups", list[NumberGroup], [LOS_ANGELES]),
    "available": (
        ok({"numbers": [{"id": "did-xyz", "number": "+12135551234"}]}),
        "$.data.numbers",
        list[AvailableNumber],
        [AvailableNumber("did-xyz", "+12135551234")],
    ),
    "requirements": (
        ok({"requirements": [{"type": "address", "fields": ["street"]}]}),
        "$.data.requirements",
        list[dict[str, Any]],
        [{"type": "address", "fields": ["street"]}],
    ),
    "reservations": (ok([DETAILS]), "$.data", list[Reservation], [DOC_RESERVATION]),
    "purchase": (
        {"success": True, "message": "done", "data": {"order": 7}},
        "$",
        dict[str, Any],
        {"message": "done", "data": {"order": 7}},
    ),
    "info": (
        wire_info(),
        "$",
        AccountInfo,
        AccountInfo(
            name="Account Name (ACC91be)",
            uuid="ACC91be",
            on_trial=False,
            blocked=False,
            created_at=datetime(2022, 4, 21, 21, 55, 37, tzinfo=timezone.utc),
            expires_at=datetime(2024, 8, 31, 19, 11, 8, tzinfo=timezone.utc),
            requests_per_minute=80,
            api_request_count=77112,
            max_api_request_count=500000,
            number_check_count=430542,
            max_number_check_count=500000,
        ),
    ),
}


@pytest.mark.parametrize("case", list(DECODED))
def test_decode_builds_each_answers_records(case: str) -> None:
    """Each endpoint's documented answer decodes to its records; "$" leaves out "success"."""
    payload, path, cls, expected = DECODED[case]
    assert expected == _wire.decode(payload, path, cls, status=200)


def _with_extras(value: Any) -> Any:
    """``value`` with an unknown field added to every object in it, at every depth."""
    if isinstance(value, dict):
        return {**{k: _with_extras(v) for k, v in value.items()}, "zz_unknown": {"x": [1]}}
    if isinstance(value, list):
        return [_with_extras(item) for item in value]
    return value


def test_a_groups_collections_decode_immutable() -> None:
    """features becomes a frozenset and requirements a tuple of the objects 2Chat sent."""
    needs = [{"type": "address"}, {"type": "identity"}]
    payload = ok({"groups": [wire_group(requirements=needs)]})
    (group,) = _wire.decode(payload, "$.data.groups", list[NumberGroup], status=200)
    assert (frozenset, tuple) == (type(group.features), type(group.requirements))
    assert tuple(needs) == group.requirements


@pytest.mark.parametrize("case", [c for c in DECODED if c not in ("requirements", "purchase")])
def test_decode_ignores_unknown_fields_everywhere(case: str) -> None:
    """An unknown field in every object of the answer, at every level, changes nothing."""
    payload, path, cls, expected = DECODED[case]
    assert expected == _wire.decode(_with_extras(payload), path, cls, status=200)


BROKEN: dict[str, tuple[dict[str, Any], str, Any, str]] = {
    "data-missing": ({"success": True}, "$.data.regions", list[Region], "no $.data"),
    "key-missing": (ok({}), "$.data.groups", list[NumberGroup], "no $.data.groups"),
    "data-not-an-object": (
        ok([DETAILS]),
        "$.data.reservation_details",
        Reservation,
        "no $.data.reservation_details",
    ),
    "details-missing-expires-at": (
        ok({"reservation_details": without(DETAILS, "expires_at")}),
        "$.data.reservation_details",
        Reservation,
        "$.data.reservation_details.expires_at",
    ),
    "details-int-uuid": (
        ok({"reservation_details": {**DETAILS, "uuid": 42}}),
        "$.data.reservation_details",
        Reservation,
        "$.data.reservation_details.uuid",
    ),
    "details-bad-created-at": (
        ok({"reservation_details": {**DETAILS, "created_at": "yesterday"}}),
        "$.data.reservation_details",
        Reservation,
        "$.data.reservation_details.created_at",
    ),
    "details-null": (
        ok({"reservation_details": None}),
        "$.data.reservation_details",
        Reservation,
        "$.data.reservation_details",
    ),
    "details-list": (
        ok({"reservation_details": [DETAILS]}),
        "$.data.reservation_details",
        Reservation,
        "$.data.reservation_details",
    ),
    "region-name": (
        ok({"regions": [{"id": 123, "iso_country_code": "US"}]}),
        "$.data.regions",
        list[Region],
        "$.data.regions[0].region_name",
    ),
    "city-name": (
        ok({"cities": [{"id": 456, "iso_country_code": "US"}]}),
        "$.data.cities",
        list[City],
        "$.data.cities[0].city_name",
    ),
    "did-type-name": (
        ok({"did_types": [{"id": 1}]}),
        "$.data.did_types",
        list[DidType],
        "$.data.did_types[0].name",
    ),
    "group-id": (
        ok({"groups": [without(wire_group(), "id")]}),
        "$.data.groups",
        list[NumberGroup],
        "$.data.groups[0].id",
    ),
    "group-monthly-price": (
        ok({"groups": [without(wire_group(), "price", "monthly_price")]}),
        "$.data.groups",
        list[NumberGroup],
        "$.data.groups[0].price.monthly_price",
    ),
    "available-number": (
        ok({"numbers": [{"id": "did-xyz"}]}),
        "$.data.numbers",
        list[AvailableNumber],
        "$.data.numbers[0].number",
    ),
    "requirement-not-an-object": (
        ok({"requirements": ["address"]}),
        "$.data.requirements",
        list[dict[str, Any]],
        "$.data.requirements[0]",
    ),
    "reservations-list-item": (
        ok([without(DETAILS, "expires_at")]),
        "$.data",
        list[Reservation],
        "$.data[0].expires_at",
    ),
    "reservations-under-a-key": (
        ok({"reservations": [DETAILS, without(DETAILS, "number")]}),
        "$.data",
        list[Reservation],
        "$.data.reservations[1].number",
    ),
    "reservations-not-a-list": (
        ok({"reservations": 3}),
        "$.data",
        list[Reservation],
        "@ $.data.reservations",
    ),
    "info-limits": (without(wire_info(), "limits"), "$", AccountInfo, "$.limits"),
    "info-requests-per-minute": (
        without(wire_info(), "limits", "requests_per_minute"),
        "$",
        AccountInfo,
        "$.limits.requests_per_minute",
    ),
    "info-account-uuid": (
        without(wire_info(), "account", "uuid"),
        "$",
        AccountInfo,
        "$.account.uuid",
    ),
}


@pytest.mark.parametrize("case", list(BROKEN))
def test_decode_names_what_is_wrong_by_2chats_path(case: str) -> None:
    """A missing or mistyped field raises InvalidResponseError naming its path in 2Chat's JSON."""
    payload, path, cls, where = BROKEN[case]
    with pytest.raises(InvalidResponseError) as info:
        _wire.decode(payload, path, cls, status=201)
    assert info.value.status == 201
    assert where in str(info.value)


@pytest.mark.parametrize(
    "data",
    [
        [DETAILS],
        {"reservations": [DETAILS]},
        {"reservation_details": DETAILS},
        {"reservation_details": [DETAILS]},
        DETAILS,
    ],
    ids=["list", "reservations", "details-object", "details-list", "one-object"],
)
def test_list_reservations_reads_every_open_shape(data: Any) -> None:
    """Every shape List Reservations may have decodes to the same list."""
    assert _wire.decode(ok(data), "$.data", list[Reservation], status=200) == [DOC_RESERVATION]


@pytest.mark.parametrize(
    "data",
    [[], {}, None, {"reservations": []}, {"reservation_details": []}, {"reservations": None}],
    ids=["list", "object", "null", "reservations", "details", "reservations-null"],
)
def test_list_reservations_reads_every_empty_shape(data: Any) -> None:
    """Every empty shape of List Reservations decodes to an empty list."""
    assert _wire.decode(ok(data), "$.data", list[Reservation], status=200) == []


def test_list_reservations_keeps_every_item_in_order() -> None:
    """Several reservations come back all, in 2Chat's order."""
    second = {**DETAILS, "uuid": "second", "number": "+12135551235"}
    payload = ok({"reservations": [DETAILS, second]})
    decoded = _wire.decode(payload, "$.data", list[Reservation], status=200)
    assert [r.uuid for r in decoded] == ["reservation-uuid-here", "second"]


@pytest.mark.parametrize(("rate", "expected"), [(80, 80.0), (1, 1.0), (30.5, 30.5)])
def test_decode_account_limit_returns_the_rate_as_a_float(rate: object, expected: float) -> None:
    """decode_account_limit reads limits.requests_per_minute of GET /open/info."""
    payload = {"success": True, "limits": {"requests_per_minute": rate}}
    assert expected == _wire.decode_account_limit(payload, status=200)


@pytest.mark.parametrize(
    "rate",
    [0, 0.5, 1e-300, -80, "80", True, None, [80], float("inf"), float("nan"), 10**400],
    ids=repr,
)
def test_decode_account_limit_refuses_what_is_not_a_finite_number_of_at_least_one(
    rate: object,
) -> None:
    """A requests_per_minute that is not a finite number >= 1 is an InvalidResponseError."""
    payload = {"success": True, "limits": {"requests_per_minute": rate}}
    with pytest.raises(InvalidResponseError, match=r"limits\.requests_per_minute") as info:
        _wire.decode_account_limit(payload, status=200)
    assert payload == info.value.body


def test_decode_account_limit_without_limits_names_the_path() -> None:
    """An /open/info answer without limits raises InvalidResponseError naming $.limits."""
    with pytest.raises(InvalidResponseError, match=r"\$\.limits"):
        _wire.decode_account_limit({"success": True}, status=200)


# -- any answer: a record or our error ----------------------------------------------------

statuses = st.integers(min_value=100, max_value=599)
headers = st.dictionaries(
    st.sampled_from(["Retry-After", "Content-Type", "Location"]), st.text(max_size=40)
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=20,
)
reservation_like = st.fixed_dictionaries(
    {},
    optional={
        "uuid": json_values | st.text(),
        "number": json_values | st.just("+12135551234"),
        "created_at": json_values | st.just("2024-01-15T10:30:00Z") | st.text(max_size=30),
        "expires_at": json_values | st.just("2024-01-15T11:30:00.5+00:00"),
    },
)
envelopes = st.fixed_dictionaries(
    {},
    optional={
        "success": json_values,
        "error_message": json_values,
        "data": json_values
        | st.fixed_dictionaries(
            {},
            optional={
                "reservation_details": reservation_like | json_values,
                "reservations": st.lists(reservation_like, max_size=3) | json_values,
            },
        ),
    },
)
bodies = st.binary(max_size=300) | (json_values | envelopes).map(lambda v: json.dumps(v).encode())


@settings(max_examples=200, deadline=None)
@given(statuses, headers, bodies)
def test_any_answer_to_reserve_is_a_reservation_or_our_error(
    status: int, head: dict[str, str], body: bytes
) -> None:
    """For any status, headers and body bytes: a Reservation or a TwoChatError, nothing else."""
    try:
        payload = _wire.parse(status, head, body)
        path = "$.data.reservation_details"
        result = _wire.decode(payload, path, Reservation, status=status, group_id=GROUP)
    except TwoChatError:
        return
    assert isinstance(result, Reservation)
    assert result.created_at.tzinfo is not None
    assert result.expires_at.tzinfo is not None


@settings(max_examples=150, deadline=None)
@given(statuses, headers, bodies)
def test_any_answer_to_list_reservations_is_records_or_our_error(
    status: int, head: dict[str, str], body: bytes
) -> None:
    """List Reservations, with its open shapes, also yields records or a TwoChatError."""
    try:
        payload = _wire.parse(status, head, body)
        result = _wire.decode(payload, "$.data", list[Reservation], status=status)
    except TwoChatError:
        return
    assert all(isinstance(item, Reservation) for item in result)


# -- after a failure: the retry decision --------------------------------------------------


def api_error(status: int, retry_after: float | None = None) -> APIError:
    """The error of an answer with ``status``, as `_wire.parse` builds it."""
    return _wire.error_class(status)("x", status=status, retry_after=retry_after)


PASSING = sorted(_wire.RETRY_STATUSES)
FINAL = [400, 401, 402, 403, 404, 406, 418, 422, 501, 599]


@pytest.mark.parametrize("method", ["GET", "DELETE"])
@pytest.mark.parametrize("status", PASSING)
def test_get_and_delete_are_retried_on_every_passing_status(method: str, status: int) -> None:
    """An idempotent request is sent again after 409, 410, 429, 486, 500, 502, 503 or 504."""
    assert _wire.retry_delay(method, api_error(status), 0, 2) is not None


@pytest.mark.parametrize("method", ["GET", "DELETE", "POST"])
@pytest.mark.parametrize("status", FINAL)
def test_statuses_that_retrying_cannot_fix_are_raised(method: str, status: int) -> None:
    """No method is sent again after a status 2Chat does not ask to retry."""
    assert _wire.retry_delay(method, api_error(status), 0, 2) is None


@pytest.mark.parametrize("status", [s for s in PASSING if s != 429])
def test_a_post_is_never_sent_again_after_an_answer_but_429(status: int) -> None:
    """2Chat may have acted on a POST answered 5xx (or busy): it is raised, never re-sent."""
    assert _wire.retry_delay("POST", api_error(status), 0, 2) is None
    assert _wire.retry_delay("POST", api_error(429), 0, 2) is not None


@pytest.mark.parametrize(
    ("error", "post_retried"),
    [
        (APIConnectionError("refused", request_sent=False), True),
        (APITimeoutError("connect timeout", request_sent=False), True),
        (APIConnectionError("dropped", request_sent=True), False),
        (APITimeoutError("no answer", request_sent=True), False),
    ],
    ids=["refused", "connect-timeout", "dropped", "answer-timeout"],
)
def test_connection_failures_are_retried_unless_a_post_may_have_arrived(
    error: APIConnectionError, post_retried: bool
) -> None:
    """GET and DELETE always; a POST only when request_sent is False (it cannot buy twice)."""
    assert _wire.retry_delay("GET", error, 0, 2) is not None
    assert _wire.retry_delay("DELETE", error, 0, 2) is not None
    assert post_retried is (_wire.retry_delay("POST", error, 0, 2) is not None)


@pytest.mark.parametrize("max_retries", [0, 1, 2, 100])
def test_no_retry_past_max_retries(max_retries: int) -> None:
    """The attempt numbered max_retries (counting from 0) is the last: then it is raised."""
    error = api_error(503)
    assert _wire.retry_delay("GET", error, max_retries, max_retries) is None
    if max_retries:
        assert _wire.retry_delay("GET", error, max_retries - 1, max_retries) is not None


def waits(error: APIError, attempt: int = 0, max_retries: int = 2) -> list[float]:
    """200 draws of the wait before retrying a GET that ended with ``error``."""
    found = [_wire.retry_delay("GET", error, attempt, max_retries) for _ in range(200)]
    return [wait for wait in found if wait is not None] if None not in found else []


@pytest.mark.parametrize("retry_after", [0.0, 1.0, 5.0, 60.0])
def test_retry_after_is_waited_with_a_little_jitter(retry_after: float) -> None:
    """Up to 60 s, Retry-After is waited plus a random share of up to 10 % of (1 s + it)."""
    drawn = waits(api_error(503, retry_after))
    assert len(drawn) == 200
    assert all(retry_after <= wait <= retry_after + 0.1 * (1 + retry_after) for wait in drawn)
    assert len(set(drawn)) > 1


def test_a_retry_after_over_60_seconds_is_raised_at_once() -> None:
    """A Retry-After longer than 60 s is not waited for: the error is raised with it."""
    assert _wire.retry_delay("POST", api_error(429, 60.5), 0, 2) is None
    assert _wire.retry_delay("GET", api_error(503, 120.0), 0, 2) is None


@pytest.mark.parametrize(("attempt", "cap"), [(0, 0.5), (1, 1.0), (3, 4.0), (4, 8.0), (99, 8.0)])
def test_backoff_is_exponential_with_full_jitter_up_to_8_seconds(attempt: int, cap: float) -> None:
    """Without Retry-After the wait is uniform in [0, min(8, 0.5 * 2**attempt)]."""
    drawn = waits(api_error(503), attempt, max_retries=100)
    assert len(drawn) == 200
    assert all(0.0 <= wait <= cap for wait in drawn)
    assert max(drawn) > cap / 2


def test_parse_reads_utf8_with_or_without_a_byte_order_mark() -> None:
    """UTF-8 is JSON's encoding; a leading BOM is skipped, as RFC 8259 allows."""
    body = '{"success": true, "data": {"name": "Zürich"}}'.encode()
    assert _wire.parse(200, {}, b"\xef\xbb\xbf" + body) == _wire.parse(200, {}, body)
    assert _wire.parse(200, {}, body)["data"] == {"name": "Zürich"}
