"""twochat-async: an asyncio-native SDK for 2Chat's Numbers API.

Example::

    async with TwoChatSession(api_key="...") as chat:
        reservation = await chat.reserve("abc-123")
"""

from ._hold import Hold
from ._session import TwoChatSession
from ._transport import RateLimit
from ._version import __version__
from .errors import (
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
from .models import (
    AccountInfo,
    AvailableNumber,
    City,
    DidType,
    NumberGroup,
    Purchase,
    Region,
    Reservation,
)

__all__ = [
    "APIConnectionError",
    "APIError",
    "APITimeoutError",
    "AccountInfo",
    "AuthenticationError",
    "AvailableNumber",
    "BadRequestError",
    "City",
    "ConflictError",
    "DidType",
    "Hold",
    "InvalidResponseError",
    "NotFoundError",
    "NumberGroup",
    "PaymentRequiredError",
    "PermissionDeniedError",
    "Purchase",
    "RateLimit",
    "RateLimitError",
    "Region",
    "Reservation",
    "ServerError",
    "TwoChatError",
    "TwoChatSession",
    "UnprocessableEntityError",
    "__version__",
]
