"""The fast paths of decoding give what the slow ones give: the same value, the same error."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

import hypothesis.strategies as st
import pytest
from hypothesis import example, given

from twochat_async import Reservation, _wire, models
from twochat_async.errors import InvalidResponseError

PATH = "$.data.reservation_details"
VALID = {
    "uuid": "5c1b9d2e-8f4a-4c3b-9e6d-2a7f1b0c4d3e",
    "number": "+12135551234",
    "created_at": "2024-01-15T10:30:00Z",
    "expires_at": "2024-01-15T11:30:00Z",
}

timestamps = st.one_of(
    st.datetimes(timezones=st.sampled_from([timezone.utc, None])).map(datetime.isoformat),
    st.sampled_from(
        [
            "2024-01-15T10:30:00Z",
            "2024-01-15T10:30:00.123456789+02:00",
            "2024-01-15 10:30",
            "0001-01-01T00:00:00+01:00",  # before year 1 in UTC
            "2024-13-01T00:00:00Z",
            "yesterday",
            "",
        ]
    ),
)
values = st.one_of(
    st.text(max_size=8), timestamps, st.none(), st.integers(), st.booleans(), st.just([])
)
fields = st.sampled_from(["uuid", "number", "created_at", "expires_at", "group_id"])
details = st.one_of(
    st.dictionaries(fields, values),
    st.fixed_dictionaries({k: st.one_of(st.just(v), values) for k, v in VALID.items()}),
    st.just(VALID),
    st.lists(st.integers(), max_size=2),
    st.text(max_size=4),
    st.none(),
)
givens = st.one_of(
    st.just({}),
    st.fixed_dictionaries({"group_id": st.text(max_size=4)}),
    st.fixed_dictionaries({"number": st.text(max_size=4)}),
    st.fixed_dictionaries({"group_id": st.just("g"), "number": st.just("+1")}),
)


def outcome(value: Any, extra: dict[str, Any], *, fast: bool) -> Any:
    """What decoding the reservation at ``value`` gives: the record, or the error's text."""
    payload = {"data": {"reservation_details": value}}
    with pytest.MonkeyPatch.context() as patch:
        if not fast:
            patch.delitem(models.FAST_PATHS, Reservation)
        try:
            return _wire.decode(payload, PATH, Reservation, status=201, **extra)
        except InvalidResponseError as exc:
            return ("error", str(exc), exc.status, exc.body)


@given(details, givens)
@example(VALID, {"group_id": "abc-123"})
@example({**VALID, "created_at": 5}, {})
@example({**VALID, "group_id": 7}, {})
@example({**VALID, "expires_at": "0001-01-01T00:00:00+01:00"}, {})
def test_fast_and_slow_reservation_decoding_agree(value: Any, extra: dict[str, Any]) -> None:
    """Every answer decodes to the same record, or fails with the same message and path."""
    assert outcome(value, extra, fast=False) == outcome(value, extra, fast=True)


def test_the_fast_path_builds_the_usual_answer_itself() -> None:
    """A valid answer is built by the fast path, not handed to the converter."""
    record = models.fast_reservation(VALID, {"group_id": "abc-123"})
    created = datetime(2024, 1, 15, 10, 30, tzinfo=timezone.utc)
    expires = datetime(2024, 1, 15, 11, 30, tzinfo=timezone.utc)
    expected = Reservation(VALID["uuid"], VALID["number"], created, expires, "abc-123")
    assert expected == record


@pytest.mark.parametrize(
    ("value", "extra"),
    [
        pytest.param({**VALID, "uuid": 1}, {}, id="a field of the wrong type"),
        pytest.param({k: v for k, v in VALID.items() if k != "number"}, {}, id="a missing field"),
        pytest.param({**VALID, "created_at": "soon"}, {}, id="a bad timestamp"),
        pytest.param({**VALID, "group_id": 3}, {}, id="a group id of the wrong type"),
        pytest.param(VALID, {"number": "+1"}, id="a given field other than group_id"),
        pytest.param([VALID], {}, id="not an object"),
    ],
)
def test_the_fast_path_leaves_any_doubt_to_the_converter(value: Any, extra: dict[str, Any]) -> None:
    """Anything unusual gives None, so that the converter words the outcome."""
    assert models.fast_reservation(value, extra) is None


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text()
    | st.sampled_from([2**64, -(2**63) - 1, 10**30, 1e308, 5e-324]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner),
    max_leaves=10,
)
json_bytes = st.one_of(
    json_values.map(lambda v: json.dumps(v).encode()),
    json_values.map(lambda v: json.dumps(v, ensure_ascii=False).encode("utf-8", "surrogatepass")),
    json_values.map(lambda v: json.dumps({"v": v}, ensure_ascii=False).encode("utf-16")),
    st.binary(max_size=12),
    st.sampled_from(
        [
            b'{"success": true}',
            b'\xef\xbb\xbf{"a": 1}',
            b'{"a": NaN, "b": Infinity}',
            b'{"a": "\\ud800"}',
            b'{"a": 12345678901234567890123}',
            b'{"a": -9223372036854775809}',
            b'{\x00"',
            b"{",
            b"",
            b'{"a": 1, "a": 2}',
        ]
    ),
)


def loaded(loads: Any, body: bytes) -> Any:
    """``loads(body)``'s value, or the kind of error ``parse`` would catch."""
    try:
        return ("value", repr(loads(body)))
    except (ValueError, UnicodeDecodeError):
        return "error"


@given(json_bytes)
def test_every_reader_reads_what_json_loads_reads(body: bytes) -> None:
    """orjson and the str fast path give json.loads' value, or fail where it fails."""
    expected = loaded(json.loads, body)
    assert [expected, expected] == [
        loaded(_wire.loads_stdlib, body),
        loaded(_wire.loads_orjson, body),
    ]


def test_answers_are_read_by_orjson_when_it_is_installed() -> None:
    """With the speedups extra installed (as in the tests), orjson reads the answers."""
    pytest.importorskip("orjson")
    assert _wire.loads is _wire.loads_orjson
