"""The servers the benchmark talks to: nginx, redis-server, and the 2Chat stand-in (an
aiohttp.web process answering reserve, purchase and cancel, counting a sliding window per
API key as 2Chat counts its budget: :class:`Window`)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import math
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import defaultdict, deque
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from benchmarks.common import ROOT, SLOW_GROUP

#: 2Chat's documented answer of *Reserve a Number*.
RESERVE_BODY = (
    '{"success":true,"data":{"reservation_details":{'
    '"uuid":"5c1b9d2e-8f4a-4c3b-9e6d-2a7f1b0c4d3e","number":"+12135551234",'
    '"created_at":"2024-01-15T10:30:00Z","expires_at":"2024-01-15T11:30:00Z"}}}'
)
PURCHASE_BODY = '{"success":true,"message":"Number purchased"}'
CANCEL_BODY = '{"success":true,"message":"Reservation cancelled successfully"}'
LIMITED = {"success": False, "error": True, "error_message": "Too many requests"}
#: How long the stand-in holds a reservation of ``SLOW_GROUP`` before answering.
HOLD_SECONDS = 120.0


class Window:
    """2Chat's count: at most ``limit`` (``None``: any) arrivals of a key in any ``seconds``."""

    def __init__(self, limit: int | None, seconds: float) -> None:
        self.limit, self.seconds = limit, seconds
        self._recent: dict[str, deque[float]] = defaultdict(deque)

    def admit(self, key: str, now: float) -> float | None:
        """Count an arrival at ``now``; ``None`` if admitted, else seconds until a free slot."""
        recent = self._recent[key]
        while recent and recent[0] <= now - self.seconds:
            recent.popleft()
        recent.append(now)
        if self.limit is None or len(recent) <= self.limit:
            return None
        # A retry is admitted once the arrival `limit` from the newest has left the window.
        return recent[-self.limit] + self.seconds - now


def serve(port: int) -> None:
    """Run the stand-in on 127.0.0.1:``port`` until killed."""
    from aiohttp import web

    window = Window(None, 1.0)
    refuse: set[int] = set()  # the arrivals (from 1) answered 429 whatever the window says
    # (time.monotonic(), endpoint, status, group_id or uuid)
    arrivals: list[tuple[float, str, int, str]] = []

    async def numbers(request: web.Request) -> web.Response:
        now = time.monotonic()
        what = request.match_info.get("what", "cancel")
        body = await request.json() if request.method == "POST" else {}
        wait = window.admit(request.headers.get("X-User-API-Key", ""), now)
        if len(arrivals) + 1 in refuse:
            wait = wait or 1.0
        whose = str(body.get("group_id", request.match_info.get("uuid", "")))
        arrivals.append((now, what, 201 if wait is None else 429, whose))
        if wait is not None:
            retry = {"Retry-After": str(max(1, math.ceil(wait)))}
            return web.json_response(LIMITED, status=429, headers=retry)
        if whose == SLOW_GROUP:
            await asyncio.sleep(HOLD_SECONDS)
        text = {"reservations": RESERVE_BODY, "purchase": PURCHASE_BODY}.get(what, CANCEL_BODY)
        if what == "reservations":  # live for an hour from now, for a hold
            text = text.replace("2024-01-15T10:30:00Z", _utc(0)).replace(
                "2024-01-15T11:30:00Z", _utc(3600)
            )
        return web.Response(status=201, text=text, content_type="application/json")

    async def reset(request: web.Request) -> web.Response:
        nonlocal window, refuse
        asked = await request.json()
        window = Window(asked["limit"], asked["seconds"])
        refuse = set(asked.get("refuse", ()))
        arrivals.clear()
        return web.json_response({})

    async def stats(request: web.Request) -> web.Response:
        if "count" in request.query:  # polled often: the counts only
            purchases = sum(what == "purchase" for _, what, _, _ in arrivals)
            return web.json_response({"arrivals": len(arrivals), "purchases": purchases})
        return web.json_response({"arrivals": arrivals})

    app = web.Application()
    app.router.add_post("/open/numbers/{what:reservations|purchase}", numbers)
    app.router.add_delete("/open/numbers/reservations/{uuid}", numbers)
    app.router.add_post("/__reset", reset)
    app.router.add_get("/__stats", stats)
    # No signal handlers: SIGTERM ends it at once, held answers and all.
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None, handle_signals=False)


class StandIn:
    """The stand-in process, seen from the parent: its URL, its counts."""

    def __init__(self, url: str) -> None:
        self.url = url

    def _call(self, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()  # a body: POST
        with urllib.request.urlopen(self.url + path, data, timeout=30) as answer:  # noqa: S310
            return json.loads(answer.read())

    def reset(self, limit: int | None, seconds: float = 1.0, refuse: tuple[int, ...] = ()) -> None:
        """Forget every arrival; count ``limit`` requests per ``seconds`` from now.

        The arrivals numbered in ``refuse`` (from 1) are answered 429, ``Retry-After: 1``.
        """
        self._call("/__reset", {"limit": limit, "seconds": seconds, "refuse": list(refuse)})

    def arrivals(self) -> list[tuple[float, str, int, str]]:
        """Every request since the last reset, in order: (arrival, endpoint, status, whose).

        The endpoint is ``reservations``, ``purchase`` or ``cancel``; whose, the body's
        ``group_id`` or the cancelled uuid.
        """
        stats = self._call("/__stats")["arrivals"]
        return [(float(t), str(w), int(s), str(g)) for t, w, s, g in stats]

    async def reached(self, arrivals: int = 0, purchases: int = 0) -> int:
        """Wait until ``arrivals`` requests and ``purchases`` purchases have arrived since the
        last reset; return how many requests have. Polled by the event loop itself (a
        thread would contend with its calls for the GIL)."""
        host, port = self.url.rsplit("/", 1)[1].split(":")
        while True:
            reader, writer = await asyncio.open_connection(host, int(port))
            writer.write(b"GET /__stats?count HTTP/1.0\r\n\r\n")
            answer = await reader.read()  # HTTP/1.0: the server closes after its answer
            writer.close()
            await writer.wait_closed()
            got = json.loads(answer.split(b"\r\n\r\n", 1)[1])
            if got["arrivals"] >= arrivals and got["purchases"] >= purchases:
                return int(got["arrivals"])
            await asyncio.sleep(0.02)


def _utc(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + seconds))


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def _process(argv: list[str], port: int) -> Iterator[None]:
    """Run ``argv`` while the block runs, entered once it accepts connections on ``port``."""
    proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.DEVNULL)  # noqa: S603 - ours
    try:
        deadline = time.monotonic() + 15
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{argv[0]} did not start (exit status {proc.returncode})")
            time.sleep(0.05)
        yield
    finally:
        proc.kill()  # nothing of theirs needs a clean exit
        proc.wait()


NGINX_CONFIG = """\
daemon off;
worker_processes 1;
pid {dir}/nginx.pid;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body; proxy_temp_path {dir}/proxy; fastcgi_temp_path {dir}/fcgi;
    uwsgi_temp_path {dir}/uwsgi; scgi_temp_path {dir}/scgi;
    keepalive_requests 10000000;
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        default_type application/json;
        location = /open/numbers/reservations {{ return 201 '{body}'; }}
    }}
}}
"""


class Servers:
    """The private servers of one run, each started on first use, all stopped by close()."""

    def __init__(self) -> None:
        self._stack = contextlib.ExitStack()
        self._tmp = self._stack.enter_context(tempfile.TemporaryDirectory(prefix="twochat-bench-"))

    @functools.cached_property
    def standin(self) -> StandIn:
        """The stand-in, in a process of its own."""
        port = free_port()
        self._stack.enter_context(
            _process([sys.executable, "-m", "benchmarks.servers", str(port)], port)
        )
        return StandIn(f"http://127.0.0.1:{port}")

    @functools.cached_property
    def nginx(self) -> str | None:
        """A private nginx answering reserve with a fixed 201; ``None``: not installed."""
        binary = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")
        if binary is None:
            return None
        port, config = free_port(), Path(self._tmp, "nginx.conf")
        config.write_text(NGINX_CONFIG.format(dir=self._tmp, port=port, body=RESERVE_BODY))
        argv = [binary, "-p", self._tmp, "-c", str(config), "-e", f"{self._tmp}/nginx.log"]
        self._stack.enter_context(_process(argv, port))
        return f"http://127.0.0.1:{port}"

    @functools.cached_property
    def redis(self) -> str | None:
        """A private redis-server, no persistence; ``None``: not installed."""
        binary = shutil.which("redis-server")
        if binary is None:
            return None
        port = free_port()
        options = ["--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        argv = [binary, *options, "--dir", self._tmp, "--logfile", f"{self._tmp}/redis.log"]
        self._stack.enter_context(_process(argv, port))
        return f"redis://127.0.0.1:{port}/0"

    def close(self) -> None:
        """Stop every server started."""
        self._stack.close()


if __name__ == "__main__":
    serve(int(sys.argv[1]))
