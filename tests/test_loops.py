"""One session across event loops: successive ``asyncio.run()`` calls, threads, closed loops.

The deployment under test: a session built at import time and driven by one
``asyncio.run()`` per job (a Celery task, a cron script). It runs as a script in a
subprocess with every warning an error, so that an unclosed pool or socket, or a traceback
printed at garbage collection, shows on its stderr. The other cases run in this process,
where warnings are errors too, so that coverage sees them.
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import aiohttp
import pytest
from conftest import API_KEY, fake_in_thread

from twochat_async import Reservation, TwoChatError, TwoChatSession
from twochat_async.testing import FakeTwoChat


def run_job(tmp_path: Path, fake: FakeTwoChat, source: str) -> subprocess.CompletedProcess[str]:
    """Run ``source`` as a script with ``-W error``, configured for ``fake`` by environment."""
    script = tmp_path / "job.py"
    script.write_text(textwrap.dedent(source))
    env = {k: v for k, v in os.environ.items() if not k.startswith("TWOCHAT_")}
    env.update(TWOCHAT_API_KEY=API_KEY, TWOCHAT_BASE_URL=fake.base_url)
    return subprocess.run(  # noqa: S603 - our own interpreter and script
        [sys.executable, "-W", "error", str(script)],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )


def test_module_level_session_serves_two_asyncio_runs_without_warnings(tmp_path: Path) -> None:
    """A session built at import time works in two asyncio.run() calls; nothing on stderr."""
    with fake_in_thread() as fake:
        result = run_job(
            tmp_path,
            fake,
            """
            import asyncio

            from twochat_async import TwoChatSession

            chat = TwoChatSession()  # at import time, never closed: a worker's session

            async def job() -> None:
                print((await chat.reserve("abc-123")).number)

            asyncio.run(job())
            asyncio.run(job())
            """,
        )
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout.split() == ["+12135551234", "+12135551235"]
    assert dict(fake.calls) == {"POST /open/numbers/reservations": 2}


def test_rate_limit_pace_holds_across_asyncio_runs(tmp_path: Path) -> None:
    """RateLimit(300/min): no two requests closer than 0.2 s, the two runs' boundary included."""
    with fake_in_thread() as fake:
        result = run_job(
            tmp_path,
            fake,
            """
            import asyncio

            from twochat_async import RateLimit, TwoChatSession

            chat = TwoChatSession(rate_limit=RateLimit(per_minute=300))  # one per 0.2 s

            async def job() -> None:
                await asyncio.gather(*(chat.did_types() for _ in range(3)))

            asyncio.run(job())
            asyncio.run(job())
            """,
        )
    assert (result.returncode, result.stderr) == (0, "")
    arrivals = [request["received"] for request in fake.requests]
    gaps = [later - earlier for earlier, later in itertools.pairwise(arrivals)]
    assert len(arrivals) == 6
    # 0.1 s of slack for the sends' jitter on a busy machine; unpaced, the boundary's gap
    # is about 4 ms.
    assert min(gaps) >= 0.1, gaps


def test_call_from_another_running_loop_is_refused_before_sending() -> None:
    """While a thread's loop owns the pool, a call from another loop raises and sends nothing."""
    with fake_in_thread() as fake:
        chat = TwoChatSession(API_KEY, base_url=fake.base_url)
        owning, release = threading.Event(), threading.Event()

        async def own() -> None:
            await chat.did_types()
            owning.set()
            await asyncio.to_thread(release.wait)

        owner = threading.Thread(target=asyncio.run, args=(own(),))
        owner.start()
        try:
            assert owning.wait(timeout=10)
            with pytest.raises(TwoChatError) as info:
                asyncio.run(chat.reserve("abc-123"))
        finally:
            release.set()
            owner.join(timeout=10)
        calls_while_owned = dict(fake.calls)

        async def take_over() -> Reservation:
            async with chat:
                return await chat.reserve("abc-123")

        reservation = asyncio.run(take_over())  # the owner's loop has ended
    assert TwoChatError is type(info.value)
    message = str(info.value)
    assert "nothing was sent" in message
    assert "one TwoChatSession per event loop" in message
    assert "asyncio.run_coroutine_threadsafe" in message
    assert API_KEY not in message
    assert calls_while_owned == {"GET /open/numbers/did-types": 1}
    assert reservation.number == "+12135551234"


def test_close_from_another_thread_closes_the_session_for_its_loop(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """close() from another loop while the pool's loop runs: no error, later calls refused."""
    with fake_in_thread() as fake:
        chat = TwoChatSession(API_KEY, base_url=fake.base_url)
        owning, closed = threading.Event(), threading.Event()
        refusals: list[TwoChatError] = []

        async def own() -> None:
            await chat.did_types()
            owning.set()
            await asyncio.to_thread(closed.wait)
            try:
                await chat.did_types()
            except TwoChatError as exc:
                refusals.append(exc)

        owner = threading.Thread(target=asyncio.run, args=(own(),))
        owner.start()
        try:
            assert owning.wait(timeout=10)
            asyncio.run(chat.close())
        finally:
            closed.set()
            owner.join(timeout=10)
        gc.collect()
    assert chat.closed
    assert [str(exc) for exc in refusals] == [
        "This TwoChatSession is closed; create a new one to make calls."
    ]
    assert dict(fake.calls) == {"GET /open/numbers/did-types": 1}
    assert [record.getMessage() for record in caplog.records] == []


def test_pool_of_a_loop_closed_without_shutdown_is_replaced_without_warnings(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Loops closed by hand (no asyncio.run cleanup): each next loop gets a working pool."""
    with fake_in_thread() as fake:
        chat = TwoChatSession(API_KEY, base_url=fake.base_url)
        numbers = []
        for _ in range(2):
            loop = asyncio.new_event_loop()
            numbers.append(loop.run_until_complete(chat.reserve("abc-123")).number)
            loop.close()  # without loop.shutdown_asyncgens(): the pool is left open
        asyncio.run(chat.close())
        gc.collect()
    assert numbers == ["+12135551234", "+12135551235"]
    # aiohttp reports an unclosed session or connector to the loop's exception handler.
    assert [record.getMessage() for record in caplog.records] == []
    assert chat.closed


def test_borrowed_http_session_of_a_closed_loop_is_refused_before_sending() -> None:
    """A borrowed http_session used after its loop closed raises TwoChatError, sends nothing."""
    with fake_in_thread() as fake:

        async def first_job() -> tuple[TwoChatSession, aiohttp.ClientSession]:
            http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True))
            chat = TwoChatSession(API_KEY, base_url=fake.base_url, http_session=http)
            await chat.did_types()
            return chat, http

        chat, http = asyncio.run(first_job())
        try:
            with pytest.raises(TwoChatError) as info:
                asyncio.run(chat.reserve("abc-123"))
        finally:
            asyncio.run(http.close())  # the caller's session, on a closed loop
    assert TwoChatError is type(info.value)
    assert "http_session" in str(info.value)
    assert "closed; nothing was sent" in str(info.value)
    assert dict(fake.calls) == {"GET /open/numbers/did-types": 1}


def test_account_limit_fetch_cut_off_by_a_closed_loop_is_made_again() -> None:
    """rate_limit='account': a GET /open/info left pending on a closed loop is asked again."""
    with fake_in_thread(latency=0.3, requests_per_minute=6000) as fake:
        chat = TwoChatSession(API_KEY, base_url=fake.base_url, rate_limit="account")
        loop = asyncio.new_event_loop()
        caller = loop.create_task(chat.did_types())
        loop.run_until_complete(fake.received("GET /open/info"))  # in flight, on the fake's loop
        loop.close()
        assert not caller.done()  # cut off with its loop

        async def next_job() -> int:
            async with chat:
                return len(await chat.did_types())

        assert asyncio.run(next_job()) == 6
    # The tasks left on the closed loop are collected here, not in a later test.
    del caller, loop
    gc.collect()
    assert dict(fake.calls) == {"GET /open/info": 2, "GET /open/numbers/did-types": 1}
