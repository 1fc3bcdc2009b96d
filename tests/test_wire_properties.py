"""Property tests of the response decoder: whatever arrives, only a record or our error."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from twochat_async import Reservation, TwoChatError, _wire

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
            {}, optional={"reservation_details": reservation_like | json_values}
        ),
    },
)
bodies = st.binary(max_size=300) | (json_values | envelopes).map(lambda v: json.dumps(v).encode())


def decode_reserve(status: int, head: dict[str, str], body: bytes) -> Any:
    """Decode an answer to reserve() as the session does."""
    payload = _wire.parse(status, head, body)
    return _wire.decode(
        payload, "$.data.reservation_details", Reservation, status=status, group_id="abc-123"
    )


@settings(max_examples=200, deadline=None)
@given(statuses, headers, bodies)
def test_any_answer_decodes_to_a_reservation_or_our_error(
    status: int, head: dict[str, str], body: bytes
) -> None:
    """For any status, headers and body bytes: a Reservation or a TwoChatError, nothing else."""
    try:
        result = decode_reserve(status, head, body)
    except TwoChatError:
        return
    assert isinstance(result, Reservation)
    assert result.created_at.tzinfo is not None
    assert result.expires_at.tzinfo is not None


@settings(max_examples=150, deadline=None)
@given(statuses, headers, bodies)
def test_any_answer_to_a_list_decodes_to_records_or_our_error(
    status: int, head: dict[str, str], body: bytes
) -> None:
    """List Reservations, with its open shapes, also yields records or a TwoChatError."""
    try:
        payload = _wire.parse(status, head, body)
        result = _wire.decode(payload, "$.data", list[Reservation], status=status)
    except TwoChatError:
        return
    assert all(isinstance(item, Reservation) for item in result)
