"""``Hold`` at a process's end: ``asyncio.run()`` ending mid-reserve, in a real subprocess.

The script below enters a hold against `Reserving`, served by this test's loop, which
holds the reserve's answer back; the test then ends the script's ``asyncio.run()`` in the
middle of it and reads what reached the server and what the script logged.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys

import pytest
from conftest import API_KEY, serve
from reserving import CANCEL, RESERVE, Reserving

pytestmark = pytest.mark.slow

SCRIPT = r"""
import asyncio, logging, signal, sys

from twochat_async import TwoChatSession

logging.basicConfig(format="%(levelname)s %(name)s: %(message)s")
how = sys.argv[1]


def note_sigint():
    # Says on stdout that SIGINT arrived, then lets asyncio's own handler act on it.
    handler = signal.getsignal(signal.SIGINT)

    def noted(signum, frame):
        print("SIGINT", flush=True)
        handler(signum, frame)

    signal.signal(signal.SIGINT, noted)


async def use_hold(chat):
    async with chat.hold("abc-123", "+12135551240"):
        print("entered", flush=True)


async def main():
    chat = TwoChatSession()  # TWOCHAT_API_KEY and TWOCHAT_BASE_URL; closed with the loop
    if how == "ctrl-c":
        note_sigint()  # asyncio.run() has installed its own handler by now
        await use_hold(chat)
    else:  # the main coroutine returns while the hold enters in another task
        entering = asyncio.create_task(use_hold(chat))
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        assert not entering.done()


try:
    asyncio.run(main())
except KeyboardInterrupt:
    print("interrupted", flush=True)
    sys.exit(130)
"""


async def start(how: str, base_url: str) -> asyncio.subprocess.Process:
    """Start the script in a subprocess of this interpreter, its key and URL in its env."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TWOCHAT_")}
    env.update(TWOCHAT_API_KEY=API_KEY, TWOCHAT_BASE_URL=base_url, PYTHONUNBUFFERED="1")
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        SCRIPT,
        how,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )


async def reserving(server: Reserving, proc: asyncio.subprocess.Process) -> None:
    """Wait until the script's reserve reached the server; fail if the script ended first."""
    arrived = asyncio.ensure_future(server.reserving.wait())
    ended = asyncio.ensure_future(proc.wait())
    await asyncio.wait([arrived, ended], timeout=60, return_when=asyncio.FIRST_COMPLETED)
    arrived.cancel()
    ended.cancel()
    if not server.reserving.is_set():
        assert proc.stderr is not None
        pytest.fail(f"the script sent no reserve: {(await proc.stderr.read()).decode()}")


def warnings_in(err: bytes) -> list[str]:
    """The WARNING lines of the script's log."""
    return [line for line in err.decode().splitlines() if line.startswith("WARNING")]


async def test_ctrl_c_while_a_hold_enters_cancels_the_reservation_on_2chat() -> None:
    """SIGINT mid-reserve: the script waits for the answer, cancels it on 2Chat, and exits."""
    server = Reserving(answered=False)
    async with serve(server.handle) as base_url:
        proc = await start("ctrl-c", base_url)
        try:
            await reserving(server, proc)
            proc.send_signal(signal.SIGINT)
            assert proc.stdout is not None
            assert await asyncio.wait_for(proc.stdout.readline(), 30) == b"SIGINT\n"
            server.answer.set()  # only now: the task was cancelled while 2Chat reserved
            out, err = await asyncio.wait_for(proc.communicate(), 60)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    assert (proc.returncode, out) == (130, b"interrupted\n"), err.decode()
    if sys.version_info >= (3, 11):
        # asyncio.run() cancels only the main task on Ctrl-C: the hold cancels in it.
        assert server.requests == [RESERVE, CANCEL]
        assert warnings_in(err) == []
    else:
        # Python 3.10's asyncio.run() cancels every task at once: the request is cut off.
        assert server.requests == [RESERVE]
        assert len(warnings_in(err)) == 1
    assert "Traceback" not in err.decode()
    assert API_KEY not in err.decode()


async def test_asyncio_run_ending_while_a_hold_enters_logs_one_warning_naming_the_group() -> None:
    """The main coroutine returning mid-reserve: the request is cut off, one WARNING says so."""
    server = Reserving(answered=False)  # never answered
    async with serve(server.handle) as base_url:
        proc = await start("return", base_url)
        try:
            await reserving(server, proc)
            out, err = await asyncio.wait_for(proc.communicate(b"return\n"), 60)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    assert (proc.returncode, out) == (0, b""), err.decode()
    assert server.requests == [RESERVE]
    (warning,) = warnings_in(err)
    assert "twochat_async" in warning
    assert "'abc-123'" in warning
    assert "+12135551240" in warning
    assert "cut off" in warning
    assert "reservations()" in warning
    assert err.decode().splitlines() == [warning]
    assert API_KEY not in err.decode()
