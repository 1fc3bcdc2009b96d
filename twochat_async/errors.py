"""Every exception twochat-async raises on purpose.

The tree:

```text
TwoChatError                    base of everything the SDK raises on purpose
├── APIError                    2Chat answered with an error (.status, .message, .body,
│   │                               .retry_after, .method, .path)
│   ├── BadRequestError             400  wrong JSON structure
│   ├── AuthenticationError         401  missing or invalid API key
│   ├── PaymentRequiredError        402  trial expired or API credits exhausted
│   ├── PermissionDeniedError       403  forbidden operation
│   ├── NotFoundError               404  unknown group, number or reservation
│   ├── ConflictError               409  resource booting up; retry in a few seconds
│   ├── UnprocessableEntityError    422  invalid request, e.g. a number not in E.164
│   ├── RateLimitError              429  too many requests (.retry_after)
│   └── ServerError                 5xx  2Chat or a gateway in front of it failed
├── APIConnectionError          no usable answer: refused, dropped, truncated (.request_sent)
│   └── APITimeoutError             no answer within the timeout
└── InvalidResponseError        a success answer that cannot be decoded (.status, .body)
```

Bad arguments are not errors of this tree: they raise `ValueError` before any I/O.
Any other error status (e.g. 406, 410, 486) raises a plain
[`APIError`][twochat_async.errors.APIError].
"""

from __future__ import annotations

from typing import Any

# The public names of this module; the package exports them (see __init__.py).
__all__ = [
    "APIConnectionError",
    "APIError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "ConflictError",
    "InvalidResponseError",
    "NotFoundError",
    "PaymentRequiredError",
    "PermissionDeniedError",
    "RateLimitError",
    "ServerError",
    "TwoChatError",
    "UnprocessableEntityError",
]


def _rebuild(cls: type[TwoChatError], args: tuple[Any, ...]) -> TwoChatError:
    """Make an empty ``cls`` with ``args``, for unpickling; its attributes follow as state."""
    return cls.__new__(cls, *args)


class TwoChatError(Exception):
    """Base class of every exception the SDK raises on purpose.

    Every error of the tree survives ``pickle``, ``copy`` and ``deepcopy`` with its type,
    message and attributes: it can cross a process (a ``ProcessPoolExecutor``, Celery).
    """

    def __reduce__(self) -> tuple[Any, ...]:
        # Exception's own __reduce__ rebuilds with type(self)(*self.args), which the
        # keyword-only arguments (status=, request_sent=) refuse: rebuild without __init__,
        # then restore the attributes. The traceback, __cause__ and __context__ stay behind.
        return (_rebuild, (type(self), self.args), self.__dict__)


class APIError(TwoChatError):
    """2Chat answered with an error status, or with ``"success": false``.

    Attributes:
        status: The HTTP status code of the answer.
        message: 2Chat's ``error_message``, or a description of the answer when it had none.
        body: The decoded JSON body, or a truncated text snippet when it was not JSON.
        retry_after: Seconds the server asked to wait before retrying (its
            ``Retry-After`` header, seconds or HTTP-date), or ``None``.
        method: The request's HTTP method, e.g. ``"DELETE"``, or ``None`` if unknown.
        path: The request's path, without its query string (never the API key), e.g.
            ``"/open/numbers/reservations/a1b2..."``, or ``None`` if unknown.

    Args:
        message: What went wrong; ``str()`` shows it after the status and the request.
        status: The HTTP status code of the answer.
        body: The decoded JSON body, or a truncated text snippet when it was not JSON.
        retry_after: Seconds the server asked to wait before retrying, or ``None``.
        method: The request's HTTP method; the session sets it.
        path: The request's path without its query string; the session sets it.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int,
        body: Any = None,
        retry_after: float | None = None,
        method: str | None = None,
        path: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.body = body
        self.retry_after = retry_after
        self.method = method
        self.path = path

    def __str__(self) -> str:
        # e.g. "HTTP 404 (DELETE /open/numbers/reservations/abc): Reservation abc not found"
        request = f" ({self.method} {self.path})" if self.method and self.path else ""
        return f"HTTP {self.status}{request}: {self.message}"


class BadRequestError(APIError):
    """HTTP 400: the request's JSON structure was wrong."""


class AuthenticationError(APIError):
    """HTTP 401: the API key is missing or invalid."""


class PaymentRequiredError(APIError):
    """HTTP 402: the trial expired or the account's API credits are exhausted."""


class PermissionDeniedError(APIError):
    """HTTP 403: the operation is forbidden for this account."""


class NotFoundError(APIError):
    """HTTP 404: the group, number or reservation does not exist."""


class ConflictError(APIError):
    """HTTP 409: the resource is booting up; 2Chat asks to retry in a few seconds."""


class UnprocessableEntityError(APIError):
    """HTTP 422: the request was invalid, e.g. a number not in E.164 or not in the group."""


class RateLimitError(APIError):
    """HTTP 429: too many requests; ``retry_after`` says how long 2Chat asked to wait."""


class ServerError(APIError):
    """HTTP 5xx: 2Chat, or a gateway in front of it, failed."""


class APIConnectionError(TwoChatError):
    """No usable answer arrived: the connection was refused, dropped or cut short.

    Attributes:
        request_sent: ``False`` when the request surely never reached 2Chat (it could
            not connect); ``True`` when it may have, so the outcome of a reservation or
            purchase is unknown: check ``reservations()`` before trying again.

    Args:
        message: What went wrong.
        request_sent: Whether the request may have reached 2Chat (see above).
    """

    def __init__(self, message: str, *, request_sent: bool) -> None:
        super().__init__(message)
        self.request_sent = request_sent


class APITimeoutError(APIConnectionError):
    """2Chat did not answer within the configured timeout."""


class InvalidResponseError(TwoChatError):
    """A success answer could not be decoded into its record.

    Attributes:
        status: The HTTP status code of the answer.
        body: The decoded JSON body, or a truncated text snippet when it was not JSON.

    Args:
        message: What could not be decoded, and why.
        status: The HTTP status code of the answer.
        body: The decoded JSON body, or a truncated text snippet when it was not JSON.
    """

    def __init__(self, message: str, *, status: int, body: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.body = body
