"""Resources that belong to one event loop and are closed with it (a pool, a Redis client).

asyncio finalizes open async generators before it closes a loop (``asyncio.run`` and
``asyncio.Runner`` call ``loop.shutdown_asyncgens()``), so a resource is tied to its loop
by a generator, started on that loop, that closes it when finalized.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncGenerator, Awaitable, Callable

import aiohttp

# A deadline for a block, which on 3.11+ (unlike asyncio.wait_for on 3.10 and 3.11) never
# swallows a cancellation that arrives as the awaited call completes; on 3.10 a cancel in
# the very step the deadline passes can still come out as the timeout.
if sys.version_info >= (3, 11):
    from asyncio import timeout
else:  # aiohttp's own dependency there
    from async_timeout import timeout

__all__ = ["close_guard", "close_with_loop", "dispose", "timeout"]


async def _hold_open(close: Callable[[], Awaitable[object]]) -> AsyncGenerator[None, None]:
    try:
        yield
    finally:
        await close()


def close_with_loop(close: Callable[[], Awaitable[object]]) -> AsyncGenerator[None, None]:
    """Return a guard that awaits ``close()`` when the running loop shuts down or on ``aclose()``.

    Must be called from a coroutine of the loop the resource belongs to.
    """
    guard = _hold_open(close)
    # Started here, in the running loop, the generator is registered with that loop.
    with contextlib.suppress(StopIteration):
        guard.asend(None).send(None)
    return guard


async def close_guard(guard: AsyncGenerator[None, None], loop: asyncio.AbstractEventLoop) -> None:
    """Close ``guard`` on ``loop``: here if it is the running loop, else in its own thread.

    A guard whose loop is closed is left alone (its resource could not be closed anyway).
    """
    if loop is asyncio.get_running_loop():
        await guard.aclose()
    elif not loop.is_closed():
        asyncio.run_coroutine_threadsafe(_aclose(guard), loop)


async def _aclose(guard: AsyncGenerator[None, None]) -> None:
    # A coroutine, as run_coroutine_threadsafe takes (aclose() returns another awaitable).
    await guard.aclose()


def dispose(http: aiohttp.ClientSession) -> None:
    """Close a pool whose event loop is closed, without a loop.

    With its loop closed, aiohttp's ``close()`` has nothing it can wait for and returns at
    once (the sockets are the garbage collector's, as asyncio leaves them), so it is run
    to its end here.
    """
    closing = http.close()
    with contextlib.suppress(StopIteration):
        closing.send(None)
    closing.close()
