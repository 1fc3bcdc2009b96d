"""Test helpers: ``FakeTwoChat``, an in-process 2Chat to run code and tests against.

The pytest fixtures ``twochat_fake`` and ``twochat_session`` live in
`twochat_async.testing.pytest_plugin`, which pytest loads by itself.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

#: The modules whose ``__all__`` list this package's public names, cheapest first.
_HOMES = ("_clock", "_catalogue", "_fake")

if TYPE_CHECKING:  # what type checkers read; at run time the same names come on first use
    from ._catalogue import *  # noqa: F403
    from ._clock import *  # noqa: F403
    from ._fake import *  # noqa: F403
else:
    from .._lazy import lazy_exports

    # Imported on first use, so that loading the pytest plugin does not import aiohttp.
    __getattr__, __dir__ = lazy_exports(__name__, _HOMES)
