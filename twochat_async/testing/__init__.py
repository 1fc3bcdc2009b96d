"""Test helpers: ``FakeTwoChat``, an in-process 2Chat to run code and tests against.

The pytest fixtures ``twochat_fake`` and ``twochat_session`` live in
`twochat_async.testing.pytest_plugin`, which pytest loads by itself.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

if TYPE_CHECKING:
    from ._catalogue import FakeGroup, default_catalogue
    from ._fake import FakeReservation, FakeTwoChat, Reply

__all__ = ["FakeGroup", "FakeReservation", "FakeTwoChat", "Reply", "default_catalogue"]

# Imported on first use, so that loading the pytest plugin does not import aiohttp.
__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "FakeGroup": "_catalogue",
        "FakeReservation": "_fake",
        "FakeTwoChat": "_fake",
        "Reply": "_fake",
        "default_catalogue": "_catalogue",
    },
)
