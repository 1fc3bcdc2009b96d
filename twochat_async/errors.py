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

What an error shows and what it keeps: ``str()`` of every error, and so its traceback and
any log line made of it, shows the text it quotes (2Chat's ``error_message``, a piece of
an answer, an id you passed) with control characters escaped as Python writes them:
ESC as ``\\x1b``, CR and LF as ``\\r`` and ``\\n``, also C1 controls, bidirectional
overrides and lone surrogates (see `escape_controls`). So an error is one line, and a
server cannot forge log lines or terminal output through it. The attributes keep the
text as it came: ``.message`` and ``.body`` are 2Chat's own; escape them yourself (e.g.
with ``repr()``) before printing them.
"""

from __future__ import annotations

import re
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


#: What `escape_controls` escapes, as (first, last) code points: C0 controls (NUL to US:
#: TAB, LF, CR, ESC, BEL...), DEL and C1 controls, the bidirectional marks, embeddings,
#: overrides and isolates (they reorder what a terminal shows), the line and paragraph
#: separators, and lone surrogates (no encoding can print them).
_CONTROL_RANGES = (
    (0x00, 0x1F),
    (0x7F, 0x9F),
    (0x061C, 0x061C),
    (0x200E, 0x200F),
    (0x2028, 0x202E),
    (0x2066, 0x2069),
    (0xD800, 0xDFFF),
)
_CONTROLS = re.compile(
    "[" + "".join(f"{re.escape(chr(a))}-{re.escape(chr(b))}" for a, b in _CONTROL_RANGES) + "]"
)
#: Each of them as Python's repr() writes it: ``\\x1b``, ``\\n``, ``\\u202e``.
_ESCAPES = {code: repr(chr(code))[1:-1] for a, b in _CONTROL_RANGES for code in range(a, b + 1)}


#: How much of 2Chat's ``error_message`` an `APIError`'s ``str()`` shows.
SHOWN_MESSAGE_CHARS = 1000


def escape_controls(text: str) -> str:
    """Return ``text`` with every control character written as its escape, e.g. ``\\x1b``.

    The one way the SDK shows text that came from 2Chat or from a caller: in error
    messages, log lines and the ``twochat`` command's output. It escapes what could
    forge a line or drive a terminal: C0 controls (CR, LF, TAB, ESC, BEL, NUL...), DEL,
    C1 controls (U+0080 to U+009F), bidirectional overrides, embeddings, isolates and
    marks (U+061C, U+200E, U+200F, U+202A to U+202E, U+2066 to U+2069), the line and
    paragraph separators (U+2028, U+2029), and lone surrogates. Other text, accents, CJK
    and emoji included, is left as it is, and so is a backslash: the result is meant to be
    read, not parsed back, and escaping it again changes nothing.

    Args:
        text: What to show.

    Returns:
        ``text`` itself when it holds none of those characters, else the escaped copy.
    """
    if _CONTROLS.search(text) is None:
        return text
    return text.translate(_ESCAPES)


def _rebuild(cls: type[TwoChatError], args: tuple[Any, ...]) -> TwoChatError:
    """Make an empty ``cls`` with ``args``, for unpickling; its attributes follow as state."""
    return cls.__new__(cls, *args)


class TwoChatError(Exception):
    """Base class of every exception the SDK raises on purpose.

    Every error of the tree survives ``pickle``, ``copy`` and ``deepcopy`` with its type,
    message and attributes: it can cross a process (a ``ProcessPoolExecutor``, Celery).
    """

    def __str__(self) -> str:
        # Control characters escaped: the message may quote 2Chat's text or a caller's.
        return escape_controls(super().__str__())

    def __reduce__(self) -> tuple[Any, ...]:
        # Exception's own __reduce__ rebuilds with type(self)(*self.args), which the
        # keyword-only arguments (status=, request_sent=) refuse: rebuild without __init__,
        # then restore the attributes. The traceback, __cause__ and __context__ stay behind.
        return (_rebuild, (type(self), self.args), self.__dict__)


class APIError(TwoChatError):
    """2Chat answered with an error status, or with ``"success": false``.

    Attributes:
        status: The HTTP status code of the answer.
        message: 2Chat's ``error_message`` as sent, or a description of the answer when
            it had none; ``str()`` shows it with control characters escaped.
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
        message = self.message
        if len(message) > SHOWN_MESSAGE_CHARS:  # .message keeps it whole
            message = f"{message[:SHOWN_MESSAGE_CHARS]}… ({len(message):,} characters in all)"
        return escape_controls(f"HTTP {self.status}{request}: {message}")


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
