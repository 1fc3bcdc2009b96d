"""twochat-async: an asyncio-native SDK for 2Chat's Numbers API.

For example:

```python
async with TwoChatSession(api_key="...") as chat:
    reservation = await chat.reserve("abc-123")
```
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._lazy import lazy_exports
from ._version import __version__

if TYPE_CHECKING:
    from ._hold import Hold
    from ._limit import Limiter
    from ._session import TwoChatSession
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
        RateLimit,
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
    "Limiter",
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

# Public names are imported on first use (PEP 562), so that importing the package,
# or its pytest plugin, does not pull in aiohttp until something needs it.
_HOMES = {
    "APIConnectionError": "errors",
    "APIError": "errors",
    "APITimeoutError": "errors",
    "AccountInfo": "models",
    "AuthenticationError": "errors",
    "AvailableNumber": "models",
    "BadRequestError": "errors",
    "City": "models",
    "ConflictError": "errors",
    "DidType": "models",
    "Hold": "_hold",
    "InvalidResponseError": "errors",
    "Limiter": "_limit",
    "NotFoundError": "errors",
    "NumberGroup": "models",
    "PaymentRequiredError": "errors",
    "PermissionDeniedError": "errors",
    "Purchase": "models",
    "RateLimit": "models",
    "RateLimitError": "errors",
    "Region": "models",
    "Reservation": "models",
    "ServerError": "errors",
    "TwoChatError": "errors",
    "TwoChatSession": "_session",
    "UnprocessableEntityError": "errors",
}

__getattr__, __dir__ = lazy_exports(__name__, _HOMES)
