"""A loopback 2Chat stand-in that counts like 2Chat: a true sliding window per API key.

It answers ``GET /open/numbers/did-types`` (and ``GET /open/info``), records each
request's arrival on its own clock, and answers 429 with ``Retry-After`` when more than
``requests`` arrived in the last ``window`` seconds for the same key. It runs on its own
event loop in a thread, so processes and loops other than the test's can call it.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections import defaultdict, deque
from collections.abc import Iterator
from contextlib import contextmanager

from aiohttp import web

from twochat_async.testing._catalogue import DID_TYPES


class StandIn:
    """The stand-in's state: its budget, what arrived, what it refused."""

    def __init__(self, requests: int | None, window: float, *, per_minute: int = 600) -> None:
        self.requests = requests
        self.window = window
        self.per_minute = per_minute
        #: (arrival on time.monotonic(), API key, User-Agent, answered status)
        self.arrivals: list[tuple[float, str, str, int]] = []
        #: Answer the n-th request (from 1) with a 429 and this Retry-After.
        self.refuse: dict[int, str] = {}
        self.base_url = ""
        self._recent: dict[str, deque[float]] = defaultdict(deque)

    def times(self, status: int | None = 200, key: str | None = None) -> list[float]:
        """Arrival times of the requests answered ``status`` (``None``: any), of ``key``."""
        return [
            t
            for t, k, _, s in self.arrivals
            if (status is None or s == status) and (key is None or k == key)
        ]

    @property
    def refused(self) -> int:
        """How many requests were answered 429."""
        return sum(s == 429 for *_, s in self.arrivals)

    def _status(self, key: str, now: float) -> int:
        recent = self._recent[key]
        while recent and recent[0] <= now - self.window:
            recent.popleft()
        recent.append(now)
        if len(self.arrivals) + 1 in self.refuse:
            return 429
        if self.requests is not None and len(recent) > self.requests:
            return 429
        return 200

    async def _handle(self, request: web.Request) -> web.Response:
        now = time.monotonic()
        key = request.headers.get("X-User-API-Key", "")
        status = self._status(key, now)
        self.arrivals.append((now, key, request.headers.get("User-Agent", ""), status))
        if status == 429:
            after = self.refuse.get(len(self.arrivals), "1")
            return web.json_response(
                {"success": False, "error_message": "Too many requests"},
                status=429,
                headers={"Retry-After": after},
            )
        if request.path == "/open/info":
            limits = {"requests_per_minute": self.per_minute}
            return web.json_response({"success": True, "limits": limits})
        return web.json_response({"success": True, "data": {"did_types": DID_TYPES}})


@contextmanager
def stand_in(requests: int | None, window: float = 1.0, **options: int) -> Iterator[StandIn]:
    """Serve a `StandIn` on 127.0.0.1 from a thread of its own while the block runs."""
    state = StandIn(requests, window, **options)
    ready = threading.Event()
    stop: list[asyncio.Event] = []
    loops: list[asyncio.AbstractEventLoop] = []

    async def serve() -> None:
        app = web.Application()
        app.router.add_get("/open/numbers/did-types", state._handle)
        app.router.add_get("/open/info", state._handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        await web.SockSite(runner, sock).start()
        state.base_url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        stop.append(asyncio.Event())
        loops.append(asyncio.get_running_loop())
        ready.set()
        try:
            await stop[0].wait()
        finally:
            await runner.cleanup()

    thread = threading.Thread(target=asyncio.run, args=(serve(),), daemon=True)
    thread.start()
    if not ready.wait(timeout=10):
        raise RuntimeError("the stand-in did not start")
    try:
        yield state
    finally:
        loops[0].call_soon_threadsafe(stop[0].set)
        thread.join(timeout=10)
