"""The error tree: as drawn in the errors module's docstring, and what each error carries."""

from __future__ import annotations

import re

import pytest

from twochat_async import _wire, errors
from twochat_async.errors import (
    APIConnectionError,
    APIError,
    InvalidResponseError,
    NotFoundError,
    RateLimitError,
)


def drawn_tree() -> dict[str, str]:
    """Each class of the tree drawn in errors.py's docstring, and its parent there."""
    drawing = (errors.__doc__ or "").split("```text\n")[1].split("```")[0]
    parents: dict[str, str] = {}
    stack: list[tuple[int, str]] = []
    for line in drawing.splitlines():
        match = re.match(r"^([│ ]*(?:[├└]── )?)(\w+Error)\b", line)
        if match is None:
            continue  # a line continuing the description above it
        depth, name = len(match.group(1)), match.group(2)
        while stack and stack[-1][0] >= depth:
            stack.pop()
        parents[name] = stack[-1][1] if stack else "Exception"
        stack.append((depth, name))
    return parents


def test_the_drawing_is_read() -> None:
    """The drawing parser finds the root and a nested leaf (else the test below is vacuous)."""
    tree = drawn_tree()
    assert tree["TwoChatError"] == "Exception"
    assert tree["APITimeoutError"] == "APIConnectionError"
    assert len(tree) == 14


def test_the_classes_are_exactly_the_drawn_tree() -> None:
    """errors.__all__ is the drawn classes, and each derives directly from its drawn parent."""
    tree = drawn_tree()
    assert sorted(tree) == errors.__all__
    actual = {name: getattr(errors, name).__bases__[0].__name__ for name in errors.__all__}
    assert tree == actual
    assert all(len(getattr(errors, name).__bases__) == 1 for name in errors.__all__)


def test_api_error_carries_status_message_body_and_retry_after() -> None:
    """APIError keeps what 2Chat answered; str() shows the status, then the message."""
    error = NotFoundError("unknown group", status=404, body={"error_message": "unknown group"})
    assert (
        error.status,
        error.message,
        error.body,
        error.retry_after,
    ) == (404, "unknown group", {"error_message": "unknown group"}, None)
    assert str(error) == "HTTP 404: unknown group"
    assert APIError("busy", status=486).body is None
    assert RateLimitError("slow", status=429, retry_after=2.5).retry_after == 2.5


def test_connection_error_requires_request_sent() -> None:
    """APIConnectionError (and so APITimeoutError) records whether the request may have gone."""
    assert APIConnectionError("refused", request_sent=False).request_sent is False
    with pytest.raises(TypeError):
        APIConnectionError("refused")  # type: ignore[call-arg]


def test_invalid_response_carries_status_and_body() -> None:
    """InvalidResponseError keeps status and body; body defaults to None."""
    error = InvalidResponseError("bad", status=201, body=[1])
    assert (error.status, error.body, str(error)) == (201, [1], "bad")
    assert InvalidResponseError("bad", status=200).body is None


def test_the_drawn_statuses_are_those_of_the_status_table() -> None:
    """Each class drawn with a 4xx status is the one _wire.error_class gives for it; 5xx too."""
    drawn = dict(re.findall(r"(\w+Error) +(\d{3}|5xx) ", errors.__doc__ or ""))
    table = {cls.__name__: str(status) for status, cls in _wire.STATUS_ERRORS.items()}
    assert {**table, "ServerError": "5xx"} == drawn
    assert _wire.error_class(599).__name__ == "ServerError"
