"""twochat-async: an asyncio-native SDK for 2Chat's Numbers API.

For example:

```python
async with TwoChatSession(api_key="...") as chat:
    reservation = await chat.reserve("abc-123")
```
"""

from __future__ import annotations

from typing import TYPE_CHECKING

#: The modules whose ``__all__`` list the package's public names (each name is written
#: there only), cheapest to import first.
_HOMES = ("_version", "errors", "models", "_limit", "_hold", "_session")

if TYPE_CHECKING:  # what type checkers read; at run time the same names come on first use
    from ._hold import *  # noqa: F403
    from ._limit import *  # noqa: F403
    from ._session import *  # noqa: F403
    from ._version import *  # noqa: F403
    from .errors import *  # noqa: F403
    from .models import *  # noqa: F403
else:
    from ._lazy import lazy_exports

    # Imported on first use (PEP 562): every pytest run of a project that has the package
    # installed loads its pytest plugin, and so this package; eagerly, that would cost
    # ~240 ms of CPU (aiohttp, cattrs) in each run, lazily ~2 ms.
    __getattr__, __dir__ = lazy_exports(__name__, _HOMES)
