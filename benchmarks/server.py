"""A canned-response HTTP/1.1 keep-alive server for the benchmark, on plain asyncio.

Every ``POST /open/numbers/reservations`` gets 2Chat's documented 201 reserve body, built
once at start-up, so the server's cost per request is a header scan and one
``transport.write``. It is written on ``asyncio.Protocol`` (no framework, no uvloop) so
that it is not the bottleneck: it answers ``GET /__stats`` with its own CPU seconds and
request count, which the benchmark reads around every timed run to report how busy the
server was.

HTTP handled: keep-alive (HTTP/1.1 default, ``Connection: close`` honoured, HTTP/1.0
closes unless ``keep-alive``), ``Content-Length`` request bodies, several requests in one
read (pipelining: answered in order), requests split across reads. A chunked request body
is refused with 501 and the connection closed: none of the benchmarked clients sends one.

Run alone: ``python -m benchmarks.server [--port 0]``; it prints ``PORT <n>`` once
listening on 127.0.0.1 and stops on SIGTERM or SIGINT. The benchmark starts it with
``--stdin-eof-stops``, so it also stops when its parent closes the pipe or dies.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import ClassVar

RESERVE_PATH = b"/open/numbers/reservations"
STATS_PATH = b"/__stats"
#: A base path whose reserve answers come after :data:`SLOW_SECONDS` (the memory runs).
SLOW_PREFIX = b"/slow"
SLOW_SECONDS = 2.0
#: A base path counted the way 2Chat counts: more than :data:`WINDOW_MAX` requests in the
#: last :data:`WINDOW_SECONDS` get 429 (600 a minute, 10 a second).
WINDOW_PREFIX = b"/window"
WINDOW_MAX = 10
WINDOW_SECONDS = 1.0

#: The documented answer of *Reserve a Number* (shared/reference/numbers-api.md).
RESERVE_BODY = (
    b'{"success":true,"data":{"reservation_details":{'
    b'"uuid":"5c1b9d2e-8f4a-4c3b-9e6d-2a7f1b0c4d3e","number":"+12135551234",'
    b'"created_at":"2024-01-15T10:30:00Z","expires_at":"2024-01-15T11:30:00Z"}}}'
)
NOT_FOUND_BODY = b'{"success":false,"error":true,"error_message":"Not found"}'
LIMITED_BODY = b'{"success":false,"error":true,"error_message":"Too many requests"}'

MAX_HEADER_BYTES = 64 * 1024


def _response(status: str, body: bytes, *, close: bool = False, extra: str = "") -> bytes:
    lines = [
        f"HTTP/1.1 {status}",
        "Server: twochat-bench",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
        *(["Connection: close"] if close else []),
        *([extra] if extra else []),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii") + body


_RESERVED = _response("201 Created", RESERVE_BODY)
_RESERVED_CLOSE = _response("201 Created", RESERVE_BODY, close=True)
_NOT_FOUND = _response("404 Not Found", NOT_FOUND_BODY)
_NOT_FOUND_CLOSE = _response("404 Not Found", NOT_FOUND_BODY, close=True)
_BAD_REQUEST = _response("400 Bad Request", b'{"success":false}', close=True)
_TOO_LARGE = _response("431 Request Header Fields Too Large", b'{"success":false}', close=True)
_NO_CHUNKED = _response("501 Not Implemented", b'{"success":false}', close=True)
#: A marker: answer after SLOW_SECONDS.
_SLOW = b""
_LIMITED = _response("429 Too Many Requests", LIMITED_BODY, extra="Retry-After: 1")


class Stats:
    """Requests served; CPU seconds come from ``time.process_time()`` when asked."""

    requests = 0
    #: Arrival times of the sliding window's requests, and how many got 429.
    window: ClassVar[collections.deque[float]] = collections.deque()
    window_requests = 0
    window_429 = 0


def _window_answer() -> bytes:
    """Count one arrival in the sliding window; 429 past its budget (every arrival counts)."""
    now = time.monotonic()
    window = Stats.window
    while window and window[0] <= now - WINDOW_SECONDS:
        window.popleft()
    window.append(now)
    Stats.window_requests += 1
    if len(window) > WINDOW_MAX:
        Stats.window_429 += 1
        return _LIMITED
    return _RESERVED


class BenchProtocol(asyncio.Protocol):
    """One connection: parse every complete request in the buffer, answer each in order."""

    def __init__(self) -> None:
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            # asyncio sets TCP_NODELAY already on 3.11+; 3.10 does not.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None

    def data_received(self, data: bytes) -> None:
        transport = self._transport
        if transport is None:
            return
        buffer = self._buffer
        buffer += data
        replies: list[bytes] = []
        close = False
        while not close:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(buffer) > MAX_HEADER_BYTES:
                    replies.append(_TOO_LARGE)
                    close = True
                break
            reply, length, last = _answer(bytes(buffer[:end]))
            total = end + 4 + length
            if len(buffer) < total:
                break  # the body is still on its way; the reply waits for it
            del buffer[:total]
            Stats.requests += 1
            if reply is _SLOW:
                # Answered later; a client sends nothing more on this connection meanwhile.
                asyncio.get_running_loop().call_later(SLOW_SECONDS, self._late, _RESERVED)
                continue
            replies.append(reply)
            close = last
        if replies:
            transport.write(b"".join(replies) if len(replies) > 1 else replies[0])
        if close:
            transport.close()

    def _late(self, reply: bytes) -> None:
        if self._transport is not None:
            self._transport.write(reply)


def _answer(head: bytes) -> tuple[bytes, int, bool]:
    """Return ``(reply, body length, close after reply)`` for one request head."""
    lines = head.split(b"\r\n")
    parts = lines[0].split(b" ")
    if len(parts) != 3 or not parts[2].startswith(b"HTTP/1."):
        return _BAD_REQUEST, 0, True
    method, target, version = parts
    length = 0
    keep_alive = version == b"HTTP/1.1"
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if not sep:
            return _BAD_REQUEST, 0, True
        name = name.strip().lower()
        if name == b"content-length":
            try:
                length = int(value)
            except ValueError:
                return _BAD_REQUEST, 0, True
            if length < 0:
                return _BAD_REQUEST, 0, True
        elif name == b"connection":
            token = value.strip().lower()
            if token == b"close":
                keep_alive = False
            elif token == b"keep-alive":
                keep_alive = True
        elif name == b"transfer-encoding":
            return _NO_CHUNKED, 0, True
    path = target.partition(b"?")[0]
    if method == b"POST" and path == SLOW_PREFIX + RESERVE_PATH:
        return _SLOW, length, False
    if method == b"POST" and path == WINDOW_PREFIX + RESERVE_PATH:
        return _window_answer(), length, not keep_alive
    if method == b"POST" and path == RESERVE_PATH:
        return (_RESERVED if keep_alive else _RESERVED_CLOSE), length, not keep_alive
    if method == b"GET" and path == STATS_PATH:
        stats = json.dumps(
            {
                "cpu_s": time.process_time(),
                "requests": Stats.requests,
                "window_requests": Stats.window_requests,
                "window_429": Stats.window_429,
            }
        )
        return _response("200 OK", stats.encode(), close=True), length, True
    return (_NOT_FOUND if keep_alive else _NOT_FOUND_CLOSE), length, not keep_alive


async def serve(host: str = "127.0.0.1", port: int = 0, *, stdin_eof_stops: bool = False) -> None:
    """Serve until SIGTERM or SIGINT (or end of stdin if asked); print ``PORT <n>`` first."""
    loop = asyncio.get_running_loop()
    stop = loop.create_future()

    def _stop() -> None:
        if not stop.done():
            stop.set_result(None)

    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):  # Windows
            loop.add_signal_handler(sig, _stop)

    def _watch_stdin() -> None:
        # Blocks without using CPU; returns when the parent goes away or closes the pipe.
        with contextlib.suppress(OSError, ValueError):
            sys.stdin.buffer.read()
        loop.call_soon_threadsafe(_stop)

    server = await loop.create_server(BenchProtocol, host, port, backlog=4096)
    bound = server.sockets[0].getsockname()[1]
    print(f"PORT {bound}", flush=True)
    if stdin_eof_stops:
        threading.Thread(target=_watch_stdin, daemon=True).start()
    async with server:
        await stop


def free_port() -> int:
    """A free TCP port on 127.0.0.1, for a private server of the benchmark."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Terminate a private server of the benchmark; kill it if it lingers 10 s."""
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@contextlib.contextmanager
def running_server(
    host: str = "127.0.0.1", *, env: Mapping[str, str] | None = None
) -> Iterator[tuple[str, int]]:
    """Start the server in a child process; yield ``(base_url, pid)``; stop it after.

    ``env`` is the child's environment (``None``: this process's).
    """
    root = Path(__file__).resolve().parent.parent
    proc = subprocess.Popen(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-m", "benchmarks.server", "--host", host, "--stdin-eof-stops"],
        cwd=root,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line.startswith("PORT "):
            raise RuntimeError(f"benchmark server did not start (said {line!r})")
        yield f"http://{host}:{int(line.split()[1])}", proc.pid
    finally:
        if proc.stdin is not None:
            proc.stdin.close()  # the server stops on end of input
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def fetch_stats(base_url: str) -> dict[str, float]:
    """Return the server's ``{"cpu_s": ..., "requests": ...}`` over a fresh connection."""
    host, port = base_url.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(b"GET /__stats HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    body = b"".join(chunks).partition(b"\r\n\r\n")[2]
    stats: dict[str, float] = json.loads(body)
    return stats


def main(argv: list[str] | None = None) -> None:
    """Run the server in the foreground."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument(
        "--stdin-eof-stops", action="store_true", help="stop when standard input closes"
    )
    args = parser.parse_args(argv)
    asyncio.run(serve(args.host, args.port, stdin_eof_stops=args.stdin_eof_stops))


if __name__ == "__main__":
    main()
