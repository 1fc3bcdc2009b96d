"""`twochat fake-server` and `python -m twochat_async.testing`: the fake in its own process."""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator, Callable

import pytest

from twochat_async import TwoChatSession
from twochat_async.cli import main as cli_main
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
