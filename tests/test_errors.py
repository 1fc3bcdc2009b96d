"""Tests of the error tree drawn in twochat_async.errors and its status table."""

from __future__ import annotations

import pytest

from twochat_async import errors
from twochat_async._wire import STATUS_ERRORS, error_class
from twochat_async.errors import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    InvalidResponseError,
    NotFoundError,
    PaymentRequiredError,
    PermissionDeniedError,
    RateLimitError,
    ServerError,
    TwoChatError,
    UnprocessableEntityError,
)

#: Each class and its direct parent, as drawn in the errors.py docstring.
TREE: dict[type[Exception], type[Exception]] = {
    TwoChatError: Exception,
    APIError: TwoChatError,
    BadRequestError: APIError,
    AuthenticationError: APIError,
    PaymentRequiredError: APIError,
    PermissionDeniedError: APIError,
    NotFoundError: APIError,
    ConflictError: APIError,
    UnprocessableEntityError: APIError,
    RateLimitError: APIError,
    ServerError: APIError,
    APIConnectionError: TwoChatError,
    APITimeoutError: APIConnectionError,
    InvalidResponseError: TwoChatError,
}

STATUS_TABLE = {
    400: BadRequestError,
    401: AuthenticationError,
    402: PaymentRequiredError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    422: UnprocessableEntityError,
    429: RateLimitError,
}


def test_errors_all_lists_every_class_of_the_tree() -> None:
    """errors.__all__ names exactly the classes of the drawn tree."""
    assert sorted(cls.__name__ for cls in TREE) == errors.__all__


@pytest.mark.parametrize(("cls", "parent"), TREE.items(), ids=lambda c: c.__name__)
def test_each_class_has_its_drawn_parent(cls: type, parent: type) -> None:
    """Each error class derives directly from the parent drawn in the tree."""
    assert (parent,) == cls.__bases__


@pytest.mark.parametrize("cls", TREE, ids=lambda c: c.__name__)
def test_every_error_is_a_twochat_error(cls: type) -> None:
    """Every class of the tree can be caught as TwoChatError."""
    assert issubclass(cls, TwoChatError)


def test_timeout_is_a_connection_error() -> None:
    """APITimeoutError is caught by except APIConnectionError and keeps request_sent."""
    with pytest.raises(APIConnectionError) as info:
        raise APITimeoutError("slow", request_sent=True)
    assert info.value.request_sent is True
    assert not issubclass(APITimeoutError, APIError)


def test_invalid_response_is_not_an_api_error() -> None:
    """InvalidResponseError is a sibling of APIError, not caught by except APIError."""
    assert not issubclass(InvalidResponseError, APIError)
    assert not issubclass(InvalidResponseError, APIConnectionError)


@pytest.mark.parametrize(("status", "cls"), STATUS_TABLE.items())
def test_error_class_maps_documented_statuses(status: int, cls: type) -> None:
    """error_class returns the class of each status in the table."""
    assert cls is error_class(status)


def test_status_errors_table_is_exactly_the_documented_one() -> None:
    """STATUS_ERRORS holds the eight documented 4xx statuses and nothing else."""
    assert STATUS_TABLE == STATUS_ERRORS


@pytest.mark.parametrize("status", [500, 501, 502, 503, 504, 599])
def test_error_class_maps_5xx_to_server_error(status: int) -> None:
    """Every status from 500 up is a ServerError."""
    assert ServerError is error_class(status)


@pytest.mark.parametrize("status", [200, 302, 405, 406, 410, 418, 486, 499])
def test_error_class_falls_back_to_api_error(status: int) -> None:
    """Statuses without a class of their own map to plain APIError."""
    assert APIError is error_class(status)


def test_api_error_str_has_status_and_message() -> None:
    """str(APIError) shows the HTTP status and the message."""
    assert str(NotFoundError("unknown group", status=404)) == "HTTP 404: unknown group"


def test_api_error_attributes() -> None:
    """APIError keeps status, message and body; body defaults to None."""
    error = APIError("busy", status=486, body={"error_message": "busy"})
    assert (error.status, error.message, error.body) == (486, "busy", {"error_message": "busy"})
    assert APIError("x", status=406).body is None


def test_rate_limit_retry_after_defaults_to_none() -> None:
    """RateLimitError.retry_after is None unless given."""
    assert RateLimitError("slow", status=429).retry_after is None
    assert RateLimitError("slow", status=429, retry_after=2.5).retry_after == 2.5


def test_rate_limit_error_is_an_api_error_with_status() -> None:
    """RateLimitError keeps APIError's status, message and str."""
    error = RateLimitError("slow down", status=429, retry_after=1.0)
    assert str(error) == "HTTP 429: slow down"
    assert (error.status, error.message) == (429, "slow down")


def test_connection_error_requires_request_sent() -> None:
    """APIConnectionError records whether the request may have reached 2Chat."""
    assert APIConnectionError("refused", request_sent=False).request_sent is False
    with pytest.raises(TypeError):
        APIConnectionError("refused")  # type: ignore[call-arg]


def test_invalid_response_attributes() -> None:
    """InvalidResponseError keeps status and body; body defaults to None."""
    error = InvalidResponseError("bad", status=201, body=[1])
    assert (error.status, error.body, str(error)) == (201, [1], "bad")
    assert InvalidResponseError("bad", status=200).body is None
