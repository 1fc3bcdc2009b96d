"""`twochat fake-server` and `python -m twochat_async.testing`: the fake in its own process."""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import re
import signal
import socket
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiohttp
import pytest

from twochat_async import TwoChatSession
from twochat_async.cli import main as cli_main
from twochat_async.testing import FakeTwoChat
from twochat_async.testing._server import main as server_main
from twochat_async.testing._server import serve

COMMANDS = {
    "twochat fake-server": ["-m", "twochat_async", "fake-server"],
    "python -m twochat_async.testing": ["-m", "twochat_async.testing"],
}


@contextlib.asynccontextmanager
async def started(*argv: str) -> AsyncIterator[tuple[asyncio.subprocess.Process, dict[str, str]]]:
    """Start the server process and read its two export lines; kill it if a test fails."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        *argv,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={k: v for k, v in os.environ.items() if not k.startswith("TWOCHAT_")},
    )
    try:
        assert process.stdout is not None
        lines = [await asyncio.wait_for(process.stdout.readline(), 30) for _ in range(2)]
        exported = dict(line.decode().strip().split("=", 1) for line in lines)
        yield process, exported
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


def free_port() -> int:
    """A port nothing listens on right now."""
    with contextlib.closing(socket.socket()) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.mark.slow
@pytest.mark.parametrize("command", COMMANDS)
async def test_server_prints_exports_serves_and_stops_on_sigint(command: str) -> None:
    """It prints TWOCHAT_BASE_URL/TWOCHAT_API_KEY, serves them, and exits 0 on SIGINT."""
    async with started(*COMMANDS[command]) as (process, exported):
        assert list(exported) == ["TWOCHAT_BASE_URL", "TWOCHAT_API_KEY"]
        assert exported["TWOCHAT_BASE_URL"].startswith("http://127.0.0.1:")
        options = {"base_url": exported["TWOCHAT_BASE_URL"], "trust_env": False}
        async with TwoChatSession(exported["TWOCHAT_API_KEY"], **options) as chat:
            reservation = await chat.reserve("abc-123")
        # Its state outlives one client, as another process would see it.
        async with TwoChatSession(exported["TWOCHAT_API_KEY"], **options) as chat:
            assert [r.uuid for r in await chat.reservations()] == [reservation.uuid]
        process.send_signal(signal.SIGINT)
        assert process.stderr is not None
        output, errors = await asyncio.wait_for(process.communicate(), 30)
    assert (process.returncode, output, errors) == (0, b"", b"")


@pytest.mark.slow
async def test_server_listens_on_the_port_asked_and_stops_on_sigterm() -> None:
    """--host and --port choose the address; SIGTERM stops it with exit 0."""
    port = free_port()
    argv = ["-m", "twochat_async", "fake-server", "--host", "127.0.0.1", "--port", str(port)]
    async with started(*argv) as (process, exported):
        assert exported["TWOCHAT_BASE_URL"] == f"http://127.0.0.1:{port}"
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 30) == 0


@pytest.mark.slow
async def test_server_on_a_taken_port_exits_1_saying_why() -> None:
    """A port already in use exits 1 with one line on stderr, printing no exports."""
    with contextlib.closing(socket.socket()) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "twochat_async.testing",
            "--port",
            str(port),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        output, errors = await asyncio.wait_for(process.communicate(), 30)
    assert (process.returncode, output) == (1, b"")
    assert errors.decode().startswith(f"fake-server: cannot listen on 127.0.0.1:{port}: ")


class Flushed(io.StringIO):
    """A text buffer that says when it was flushed (the server flushes its exports)."""

    def __init__(self) -> None:
        super().__init__()
        self.flushed = asyncio.Event()

    def flush(self) -> None:
        """Flush, and say so."""
        super().flush()
        self.flushed.set()


async def test_serve_in_process_stops_on_its_signal_handler() -> None:
    """serve() itself (as both commands run it) answers until a SIGINT reaches the process."""
    out = Flushed()
    serving = asyncio.create_task(serve("127.0.0.1", 0, out))
    await asyncio.wait_for(out.flushed.wait(), 10)
    exported = dict(line.split("=", 1) for line in out.getvalue().splitlines())
    async with TwoChatSession(
        exported["TWOCHAT_API_KEY"], base_url=exported["TWOCHAT_BASE_URL"], trust_env=False
    ) as chat:
        assert await chat.did_types()
    os.kill(os.getpid(), signal.SIGINT)
    await asyncio.wait_for(serving, 10)
    # The handlers are removed again: SIGINT is Python's KeyboardInterrupt once more.
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


@pytest.mark.parametrize(
    "main", [cli_main, server_main], ids=["twochat fake-server", "python -m ...testing"]
)
def test_taken_port_in_process_exits_1(
    main: Callable[[list[str]], int], capsys: pytest.CaptureFixture[str]
) -> None:
    """Both entry points return 1 and say why when the port is taken."""
    with contextlib.closing(socket.socket()) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        argv = ["--port", str(port)]
        code = main(["fake-server", *argv] if main is cli_main else argv)
    assert code == 1
    assert capsys.readouterr().err.startswith(f"fake-server: cannot listen on 127.0.0.1:{port}")


# -- Listening on every interface; a log that stays bounded however long it serves -------


async def test_on_every_interface_it_prints_a_base_url_the_sdk_accepts(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """--host 0.0.0.0 exports http://127.0.0.1:PORT, usable as is, and says how others reach it."""
    out = Flushed()
    serving = asyncio.create_task(serve("0.0.0.0", 0, out))  # noqa: S104 - the point of the test
    try:
        await asyncio.wait_for(out.flushed.wait(), 10)
        exported = dict(line.split("=", 1) for line in out.getvalue().splitlines())
        assert exported["TWOCHAT_BASE_URL"].startswith("http://127.0.0.1:")
        # No allow_insecure_http: the SDK takes the URL printed as it is.
        async with TwoChatSession(
            exported["TWOCHAT_API_KEY"], base_url=exported["TWOCHAT_BASE_URL"], trust_env=False
        ) as chat:
            assert await chat.did_types()
    finally:
        os.kill(os.getpid(), signal.SIGINT)
        await asyncio.wait_for(serving, 10)
    port = exported["TWOCHAT_BASE_URL"].rsplit(":", 1)[1]
    assert capsys.readouterr().err == (
        f"fake-server: listening on every interface: other machines use "
        f"http://<this host's address>:{port}; plain http, so a client there passes "
        "allow_insecure_http=True (twochat --allow-insecure-http).\n"
    )


async def test_a_fake_with_keep_requests_logs_only_the_latest() -> None:
    """keep_requests=3 keeps the last 3 requests; calls, received() and info() count all."""
    fake = FakeTwoChat(keep_requests=3)
    async with fake as base_url, TwoChatSession(fake.api_key, base_url=base_url) as chat:
        for country in ("US", "CA", "GB", "DE", "BR"):
            await chat.groups(country, region_id=123)
        await fake.received("GET /open/numbers/groups", 5)
        assert (await chat.info()).api_request_count == 6
    assert [r["query"].get("country") for r in fake.requests] == ["DE", "BR", None]
    assert fake.requests[-1]["path"] == "/open/info"
    assert fake.calls == {"GET /open/numbers/groups": 5, "GET /open/info": 1}


@pytest.mark.parametrize("value", [-1, 1.5, True, "10"], ids=repr)
def test_keep_requests_must_be_a_count(value: object) -> None:
    """keep_requests is None or an int of 0 or more: anything else is a ValueError."""
    with pytest.raises(ValueError, match=r"^keep_requests must be an int of at least 0"):
        FakeTwoChat(keep_requests=value)  # type: ignore[arg-type]


def _rss_kib(pid: int) -> int:
    """The resident memory of process ``pid``, in KiB (from Linux's /proc, as CI runs)."""
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"^VmRSS:\s+(\d+) kB$", status, re.M).group(1))  # type: ignore[union-attr]


@pytest.mark.slow
async def test_the_servers_memory_stays_bounded_however_many_requests_it_logs() -> None:
    """1,500 requests of 64 KiB (96 MiB in all) leave the server's memory nearly where it was."""
    body = b'{"group_id": "abc-123", "pad": "' + b"x" * 65536 + b'"}'
    async with started(*COMMANDS["twochat fake-server"]) as (process, exported):
        url = exported["TWOCHAT_BASE_URL"] + "/open/numbers/purchase"
        async with aiohttp.ClientSession() as http:

            async def send(count: int) -> None:
                for _ in range(count):  # a wrong key: 401, logged, nothing bought
                    async with http.post(url, data=body, headers={"X-User-API-Key": "no"}) as r:
                        assert r.status == 401

            await send(200)  # past the kept 100: the log is full and memory warmed up
            before = _rss_kib(process.pid)
            await send(1500)
            grown = _rss_kib(process.pid) - before
    # An unbounded log would keep every body: 96 MiB more.
    assert grown < 32 * 1024, f"the server grew by {grown} KiB"
