"""RedisRateLimit against a real redis-server: one budget for many processes and hosts."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import redis
import redis.asyncio
from conftest import API_KEY, envelope
from standin import stand_in
from test_limit import most_in_any_window

from twochat_async import TwoChatError, TwoChatSession
from twochat_async.redis import RedisRateLimit
from twochat_async.testing import FakeTwoChat, Reply

if shutil.which("redis-server") is None:  # pragma: no cover - CI installs it
    WHY = "redis-server is not installed: `apt-get install redis-server` runs these tests"
    if os.environ.get("TWOCHAT_REQUIRE_REDIS") == "1":
        pytest.fail(f"TWOCHAT_REQUIRE_REDIS=1 but {WHY}", pytrace=False)
    pytest.skip(WHY, allow_module_level=True)


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def run_redis(port: int | None = None) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """Run a private redis-server on 127.0.0.1 (no persistence) while the block runs."""
    port = port or free_port()
    server = subprocess.Popen(  # noqa: S603 - Debian's redis-server, our arguments
        [
            str(shutil.which("redis-server")),
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        stdout=subprocess.DEVNULL,
    )
    try:
        client = redis.Redis(port=port)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)
        client.close()
        yield server, port
    finally:
        server.terminate()
        server.wait(timeout=10)


@pytest.fixture(scope="session")
def redis_port() -> Iterator[int]:
    """One redis-server for the test session; its port."""
    with run_redis() as (_, port):
        yield port


@pytest.fixture
def redis_url(redis_port: int) -> str:
    """The session's redis-server, emptied before each test."""
    with redis.Redis(port=redis_port) as client:
        client.flushall()
    return f"redis://127.0.0.1:{redis_port}/0"


def scan(port: int) -> str:
    """What ``redis-cli --scan`` shows, then every key's fields and values."""
    cli = [str(shutil.which("redis-cli")), "-p", str(port)]
    keys = subprocess.run([*cli, "--scan"], capture_output=True, text=True, check=True).stdout  # noqa: S603
    values = [
        subprocess.run([*cli, "hgetall", k], capture_output=True, text=True, check=True).stdout  # noqa: S603
        for k in keys.split()
    ]
    return keys + "".join(values)


WORKER = """
import asyncio, json, logging, sys
from twochat_async import TwoChatSession
from twochat_async.redis import RedisRateLimit

redis_url, base_url, key, calls, agent = sys.argv[1:6]
warnings = []

class Keep(logging.Handler):
    def emit(self, record):
        warnings.append(record.getMessage())

logging.getLogger("twochat_async").addHandler(Keep(logging.WARNING))

async def main():
    limit = RedisRateLimit(redis_url, per_minute=600)
    async with TwoChatSession(
        key, base_url=base_url, rate_limit=limit, max_retries=0, user_agent=agent
    ) as chat:
        print("started", flush=True)
        sys.stdin.readline()  # all processes go at once
        results = await asyncio.gather(
            *(chat.did_types() for _ in range(int(calls))), return_exceptions=True
        )
    failures = [type(r).__name__ for r in results if isinstance(r, BaseException)]
    print(json.dumps({"failures": failures, "warnings": warnings}), flush=True)

asyncio.run(main())
"""


def start_workers(
    redis_url: str, base_url: str, keys: list[str], calls: int
) -> list[subprocess.Popen[str]]:
    """Start one OS process per key, each making ``calls`` concurrent calls at 600/min.

    They start their calls together, once all of them have imported and are ready.
    """
    workers = [
        subprocess.Popen(  # noqa: S603 - our interpreter and our program
            [sys.executable, "-c", WORKER, redis_url, base_url, key, str(calls), f"worker-{n}"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for n, key in enumerate(keys)
    ]
    for worker in workers:
        assert worker.stdout is not None
        assert worker.stdout.readline() == "started\n"
    for worker in workers:
        assert worker.stdin is not None
        worker.stdin.write("go\n")
        worker.stdin.flush()
    return workers


def results(workers: list[subprocess.Popen[str]]) -> list[dict[str, list[str]]]:
    """Each worker's failures and WARNING lines, once it has ended."""
    out = []
    for worker in workers:
        stdout, _ = worker.communicate(timeout=60)  # closes its stdin too
        assert worker.returncode == 0
        out.append(json.loads(stdout.splitlines()[-1]))
    return out


@pytest.mark.slow
def test_separate_api_keys_have_separate_budgets(redis_url: str) -> None:
    """Two keys, two processes each: each key gets its own 600/min, none of them a 429."""
    other = "another-secret-key-9876543210"
    # The stand-in's 2Chat-like window leaves a few calls of slack over the budget: a busy
    # machine delays a process's calls by tens of milliseconds, more than the 3 % margin of
    # a window this short. Four processes on one key are tests/test_fleet.py's.
    with stand_in(13, window=1.0) as server:
        workers = start_workers(redis_url, server.base_url, [API_KEY, other] * 2, 10)
        outcomes = results(workers)
    assert [o["failures"] for o in outcomes] == [[]] * 4
    assert server.refused == 0
    for key in (API_KEY, other):
        times = server.times(key=key)
        assert len(times) == 20
        assert most_in_any_window(times, 1.0) <= 13
        # 2 s each; one budget for both keys would need 4 s for these 40 calls.
        assert max(times) - min(times) < 3.0


@pytest.mark.slow
def test_a_429_in_one_process_holds_every_process_back(redis_url: str) -> None:
    """The 10th call gets 429 Retry-After: 1; no process sends during the next second."""
    with stand_in(None) as server:
        server.refuse[10] = "1"
        workers = start_workers(redis_url, server.base_url, [API_KEY] * 4, 6)
        outcomes = results(workers)
    assert sorted(f for o in outcomes for f in o["failures"]) == ["RateLimitError"]
    (refused_at,) = server.times(429)
    # Calls granted before the pause reached Redis may still arrive a little later.
    during = [t for t in server.times() if refused_at + 0.3 < t < refused_at + 0.95]
    assert during == []
    assert len(server.times()) == 23


@pytest.mark.slow
def test_killing_redis_mid_run_fails_no_call_and_paces_each_process_at_its_share() -> None:
    """Redis dies after both processes booked on it: every call succeeds, and the two
    together keep to the one budget (each at half of 600/min), not to twice it."""
    with run_redis() as (redis_server, port), stand_in(None) as server:
        url = f"redis://127.0.0.1:{port}/0"
        workers = start_workers(url, server.base_url, [API_KEY] * 2, 15)
        deadline = time.monotonic() + 30
        agents: Any = lambda: [a for _, _, a, _ in server.arrivals]  # noqa: E731
        while min(map(agents().count, ("worker-0", "worker-1"))) < 2:
            assert time.monotonic() < deadline, "the workers did not call"
            time.sleep(0.01)
        redis_server.terminate()
        killed = time.monotonic()
        outcomes = results(workers)
    assert [o["failures"] for o in outcomes] == [[], []]
    for outcome in outcomes:
        (warning,) = outcome["warnings"]
        assert "its share of the budget (300 of 600 a minute)" in warning
        assert API_KEY not in warning
    after = [t for t, _, _, _ in server.arrivals if t > killed + 0.3]
    assert len(after) >= 10
    # The budget's 10 a second, and slack for the machine; each alone at the whole budget
    # would send 20.
    assert most_in_any_window(after, 1.0) <= 13


async def test_redis_answering_late_is_waited_for_not_taken_for_an_outage(
    fake: FakeTwoChat, caplog: pytest.LogCaptureFixture
) -> None:
    """Redis stopped for 1.5 s (slow, not down): the calls wait for it rather than go out
    under a local limit, and nothing is logged."""
    with stalled_redis() as (server, port):
        limit = RedisRateLimit(f"redis://127.0.0.1:{port}/0", per_minute=6000)
        with caplog.at_level(logging.WARNING, logger="twochat_async"):
            async with TwoChatSession(API_KEY, base_url=fake.base_url, rate_limit=limit) as chat:
                await chat.did_types()
                os.kill(server.pid, signal.SIGSTOP)
                waiting = asyncio.gather(*(chat.did_types() for _ in range(3)))
                await asyncio.sleep(1.5)
                sent_while_stopped = fake.calls["GET /open/numbers/did-types"]
                os.kill(server.pid, signal.SIGCONT)
                await asyncio.wait_for(waiting, 15)
    assert sent_while_stopped == 1
    assert caplog.records == []
    assert fake.calls["GET /open/numbers/did-types"] == 4


async def test_on_error_raise_fails_fast_and_sends_nothing(fake: FakeTwoChat) -> None:
    """A dead Redis with on_error='raise': TwoChatError within a second, nothing sent."""
    limit = RedisRateLimit(f"redis://127.0.0.1:{free_port()}/0", per_minute=80, on_error="raise")
    async with TwoChatSession(API_KEY, base_url=fake.base_url, rate_limit=limit) as chat:
        started = time.monotonic()
        with pytest.raises(TwoChatError, match="Redis") as caught:
            await chat.did_types()
    assert time.monotonic() - started < 1.0
    assert API_KEY not in str(caught.value)
    assert fake.calls == {}


async def test_a_dead_redis_warns_once_and_paces_locally(
    fake: FakeTwoChat, caplog: pytest.LogCaptureFixture
) -> None:
    """on_error='local' and no Redis: calls go on at the same rate, one WARNING, no key."""
    limit = RedisRateLimit(f"redis://127.0.0.1:{free_port()}/0", per_minute=600)
    with caplog.at_level(logging.WARNING, logger="twochat_async"):
        async with TwoChatSession(API_KEY, base_url=fake.base_url, rate_limit=limit) as chat:
            started = time.monotonic()
            await asyncio.gather(*(chat.did_types() for _ in range(6)))
            elapsed = time.monotonic() - started
    assert 0.45 <= elapsed < 2.5  # a 0.5 s Redis timeout per call would take 3 s
    (record,) = caplog.records
    assert "Redis" in record.getMessage()
    assert API_KEY not in caplog.text
    assert fake.calls["GET /open/numbers/did-types"] == 6


async def test_sharing_resumes_when_redis_is_back(fake: FakeTwoChat) -> None:
    """Calls made while Redis is down go on; a second after it is back, Redis is used."""
    port = free_port()
    limit = RedisRateLimit(f"redis://127.0.0.1:{port}/0", per_minute=6000)
    async with TwoChatSession(API_KEY, base_url=fake.base_url, rate_limit=limit) as chat:
        await chat.did_types()
        with run_redis(port):
            await asyncio.sleep(1.1)  # the per-process limit stands in for a second
            await chat.did_types()
            assert "twochat:budget:" in scan(port)


async def test_redis_holds_no_trace_of_the_api_key(redis_url: str, fake: FakeTwoChat) -> None:
    """redis-cli --scan and the values: a hash-named budget, never the key or a piece."""
    limit = RedisRateLimit(redis_url, per_minute=6000)
    async with TwoChatSession(API_KEY, base_url=fake.base_url, rate_limit=limit) as chat:
        await chat.did_types()
    shown = scan(int(redis_url.rsplit(":", 1)[1].split("/")[0]))
    keys = shown.split("\n", 2)[:2]
    assert sorted(key.split(":")[1] for key in keys) == ["budget", "processes"]
    assert len({key.split(":")[2] for key in keys}) == 1  # one hash names both
    pieces = {API_KEY[i : i + 12] for i in range(len(API_KEY) - 11)}
    assert not [piece for piece in pieces if piece in shown]
    assert API_KEY not in repr(limit)


async def test_a_cancelled_waiter_gives_its_slot_back(redis_url: str, fake: FakeTwoChat) -> None:
    """At 60/min, a waiter cancelled before its slot frees it: Redis's schedule is back where
    it was before the waiter booked (read from Redis, not timed), for the next call."""
    limit = RedisRateLimit(redis_url, per_minute=60)
    client = redis.asyncio.Redis.from_url(redis_url)
    async with TwoChatSession(API_KEY, base_url=fake.base_url, rate_limit=limit) as chat:
        await chat.did_types()
        booked = await tat(client)
        waiting = asyncio.create_task(chat.did_types())
        await until_changed(client, booked)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        given_back = await tat(client)
        await chat.did_types()  # takes the slot given back
    await client.aclose()
    assert given_back == booked
    assert fake.calls["GET /open/numbers/did-types"] == 2


async def test_a_waiter_cancelled_while_its_booking_is_in_flight_gives_the_slot_back(
    redis_port: int, redis_url: str, fake: FakeTwoChat
) -> None:
    """Cancelled after Redis booked its slot but before the answer came back, a waiter
    still reads the answer and gives the slot back: Redis's schedule is where it was."""
    client = redis.asyncio.Redis.from_url(redis_url)
    async with HeldAnswers(redis_port) as proxy:
        limit = RedisRateLimit(proxy.url, per_minute=60)
        async with TwoChatSession(API_KEY, base_url=fake.base_url, rate_limit=limit) as chat:
            await chat.did_types()
            booked = await tat(client)
            proxy.flowing.clear()  # Redis gets the next booking; its answer waits here
            waiting = asyncio.create_task(chat.did_types())
            await until_changed(client, booked)
            waiting.cancel()
            await asyncio.sleep(0)  # the cancellation reaches the waiter first
            proxy.flowing.set()
            with pytest.raises(asyncio.CancelledError):
                await waiting
            given_back = await tat(client)
            await chat.did_types()  # takes the slot given back
    await client.aclose()
    assert given_back == booked
    assert fake.calls["GET /open/numbers/did-types"] == 2


class HeldAnswers:
    """A TCP proxy to Redis that passes requests at once and holds Redis's answers back
    while ``flowing`` is clear."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.flowing = asyncio.Event()
        self.flowing.set()
        self._tasks: set[asyncio.Task[Any]] = set()

    async def __aenter__(self) -> HeldAnswers:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.url = f"redis://127.0.0.1:{self._server.sockets[0].getsockname()[1]}/0"
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._server.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        upstream, up = await asyncio.open_connection("127.0.0.1", self.port)

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter, held: bool) -> None:
            while data := await src.read(65536):
                if held:
                    await self.flowing.wait()
                dst.write(data)
                await dst.drain()
            dst.close()

        try:
            await asyncio.gather(pipe(reader, up, False), pipe(upstream, writer, True))
        finally:
            up.close()
            writer.close()


async def tat(client: redis.asyncio.Redis) -> list[Any]:
    """The next free slot ("tat") of every budget in Redis."""
    return [await client.hget(key, "tat") for key in sorted(await client.keys("twochat:budget:*"))]


async def test_per_minute_account_reads_info_once(redis_url: str, fake: FakeTwoChat) -> None:
    """per_minute='account' paces at the account's requests_per_minute, read once."""
    fake.requests_per_minute = 600
    limit = RedisRateLimit(redis_url, per_minute="account")
    async with TwoChatSession(API_KEY, base_url=fake.base_url, rate_limit=limit) as chat:
        started = time.monotonic()
        await asyncio.gather(*(chat.did_types() for _ in range(6)))
        elapsed = time.monotonic() - started
    assert fake.calls["GET /open/info"] == 1
    assert elapsed >= 0.45
    assert "twochat:budget:" in scan(int(redis_url.rsplit(":", 1)[1].split("/")[0]))


def test_the_budget_holds_across_event_loops(redis_url: str) -> None:
    """One session and limiter, two asyncio.run() calls: the second keeps the pace."""
    with stand_in(None) as server:
        limit = RedisRateLimit(redis_url, per_minute=600)
        chat = TwoChatSession(API_KEY, base_url=server.base_url, rate_limit=limit)

        async def two() -> None:
            await asyncio.gather(chat.did_types(), chat.did_types())

        asyncio.run(two())
        asyncio.run(two())
        asyncio.run(chat.close())
    times = server.times()
    assert len(times) == 4
    assert max(times) - min(times) >= 0.3


async def test_a_borrowed_client_is_left_open(redis_port: int, fake: FakeTwoChat) -> None:
    """redis=<client>: the session uses it and leaves it open when it closes."""
    client = redis.asyncio.Redis(port=redis_port)
    limit = RedisRateLimit(redis=client, per_minute=6000, name="reports")
    async with TwoChatSession(API_KEY, base_url=fake.base_url, rate_limit=limit) as chat:
        await chat.did_types()
    assert await client.ping()
    await client.aclose()


async def test_names_split_one_keys_budget(redis_url: str, fake: FakeTwoChat) -> None:
    """Two names on one API key: two budgets, each at its own pace."""
    async with (
        TwoChatSession(
            API_KEY, base_url=fake.base_url, rate_limit=RedisRateLimit(redis_url, per_minute=60)
        ) as first,
        TwoChatSession(
            API_KEY,
            base_url=fake.base_url,
            rate_limit=RedisRateLimit(redis_url, per_minute=60, name="bot"),
        ) as second,
    ):
        started = time.monotonic()
        await asyncio.gather(first.did_types(), second.did_types())
    assert time.monotonic() - started < 0.9  # one budget: the second a second later
    assert scan(int(redis_url.rsplit(":", 1)[1].split("/")[0])).count("twochat:budget:") == 2


def test_arguments_are_checked() -> None:
    """Neither or both of url and redis, a bad on_error or name: ValueError."""
    client = redis.asyncio.Redis()
    with pytest.raises(ValueError, match="one of url"):
        RedisRateLimit(per_minute=80)
    with pytest.raises(ValueError, match="one of url"):
        RedisRateLimit("redis://localhost", redis=client, per_minute=80)
    with pytest.raises(ValueError, match="on_error"):
        RedisRateLimit("redis://localhost", per_minute=80, on_error="ignore")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="name"):
        RedisRateLimit("redis://localhost", per_minute=80, name=3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="per_minute"):
        RedisRateLimit("redis://localhost", per_minute=0)


def test_one_limiter_serves_one_api_key() -> None:
    """A RedisRateLimit given to sessions of two keys: ValueError for the second."""
    limit = RedisRateLimit("redis://localhost", per_minute=80)
    TwoChatSession(API_KEY, rate_limit=limit)
    TwoChatSession(API_KEY, rate_limit=limit)  # the same key again is fine
    with pytest.raises(ValueError, match="one per API key"):
        TwoChatSession("another-secret-key-9876543210", rate_limit=limit)


async def test_outside_a_session_it_says_how_to_use_it(redis_url: str) -> None:
    """acquire() on a limiter no session was given: TwoChatError saying rate_limit=."""
    limit = RedisRateLimit(redis_url, per_minute=80)
    with pytest.raises(TwoChatError, match="rate_limit="):
        await limit.acquire()


# -- a stalled Redis, and a corrupt budget --------------------------------------------------


@contextmanager
def stalled_redis() -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """A private redis-server, to SIGSTOP; it is continued and stopped at the end whatever
    the test did."""
    with run_redis() as (server, port):
        try:
            yield server, port
        finally:
            os.kill(server.pid, signal.SIGCONT)


async def test_a_stalled_redis_bounds_every_call_whatever_the_client(
    fake: FakeTwoChat, caplog: pytest.LogCaptureFixture
) -> None:
    """redis-py's defaults wait for ever; a SIGSTOPped Redis still fails a round trip in 1 s."""
    with stalled_redis() as (server, port):
        client = redis.asyncio.Redis(port=port)  # no socket timeout at all
        limit = RedisRateLimit(redis=client, per_minute=6000)
        with caplog.at_level(logging.WARNING, logger="twochat_async"):
            async with TwoChatSession(API_KEY, base_url=fake.base_url, rate_limit=limit) as chat:
                await chat.did_types()
                os.kill(server.pid, signal.SIGSTOP)
                # Before the bound, this waited as long as Redis stayed stopped.
                await asyncio.wait_for(chat.did_types(), 15)
        await client.aclose()
    (record,) = caplog.records
    assert "Redis of the shared rate limit failed (TimeoutError" in record.getMessage()
    assert fake.calls["GET /open/numbers/did-types"] == 2


async def test_a_call_cancelled_while_redis_is_stalled_ends_at_once(fake: FakeTwoChat) -> None:
    """A waiter cancelled on a stopped Redis gives up giving its slot back, and ends."""
    with stalled_redis() as (server, port):
        client = redis.asyncio.Redis(port=port)
        limit = RedisRateLimit(redis=client, per_minute=60)
        async with TwoChatSession(API_KEY, base_url=fake.base_url, rate_limit=limit) as chat:
            await chat.did_types()
            before = await tat(client)
            waiting = asyncio.create_task(chat.did_types())  # books the slot 1 s on, sleeps
            await until_changed(client, before)
            os.kill(server.pid, signal.SIGSTOP)
            waiting.cancel()
            # Before the bound, the give-back waited on the stopped Redis for ever.
            done, _ = await asyncio.wait({waiting}, timeout=10)
            assert done == {waiting}
            assert waiting.cancelled()
        await client.aclose()
    assert fake.calls["GET /open/numbers/did-types"] == 1


async def until_changed(client: redis.asyncio.Redis, before: list[Any]) -> None:
    """Wait until a budget's TAT moves (a caller booked a slot), 10 s at most."""
    for _ in range(1000):
        if await tat(client) != before:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("no slot was booked")


SHUTDOWN = """
import asyncio, os, signal, sys
import redis.asyncio
from twochat_async import TwoChatSession
from twochat_async.redis import RedisRateLimit
from twochat_async.testing import FakeTwoChat, Reply

port, pid, key = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]

async def main():
    fake = FakeTwoChat(api_key=key)
    base_url = await fake.start()
    limit = RedisRateLimit(redis=redis.asyncio.Redis(port=port), per_minute=60)
    chat = TwoChatSession(key, base_url=base_url, rate_limit=limit)
    await chat.did_types()
    waiting = asyncio.create_task(chat.did_types())  # books the slot 1 s on, sleeps
    await asyncio.sleep(0.3)
    os.kill(pid, signal.SIGSTOP)
    print("stopped", flush=True)
    # main returns: asyncio.run cancels the waiter, whose give-back meets a stopped Redis

asyncio.run(main())
print("exited", flush=True)
"""


def test_asyncio_run_ends_with_redis_stalled_mid_call() -> None:
    """The main coroutine returns while a call waits on a stopped Redis: the process ends."""
    with stalled_redis() as (server, port):
        try:
            finished = subprocess.run(  # noqa: S603 - our interpreter, our script
                [sys.executable, "-c", SHUTDOWN, str(port), str(server.pid), API_KEY],
                capture_output=True,
                text=True,
                timeout=30,  # it ends in about 2 s; before the bounds, never
            )
        except subprocess.TimeoutExpired as exc:
            raise AssertionError("asyncio.run() never ended with Redis stopped") from exc
    assert (finished.returncode, finished.stdout) == (0, "stopped\nexited\n"), finished.stderr


@pytest.mark.parametrize("field", ["tat", "pause"])
async def test_a_budget_set_far_ahead_is_reset_with_a_warning(
    field: str, redis_url: str, fake: FakeTwoChat, caplog: pytest.LogCaptureFixture
) -> None:
    """A budget a day ahead (a clock fault, a stray write) parks no call: reset, one WARNING."""
    limit = RedisRateLimit(redis_url, per_minute=6000)
    client = redis.asyncio.Redis.from_url(redis_url)
    async with TwoChatSession(API_KEY, base_url=fake.base_url, rate_limit=limit) as chat:
        await chat.did_types()
        (key,) = await client.keys("twochat:budget:*")
        seconds, micros = await client.time()
        a_day_on = (seconds + 86_400) * 1_000_000 + micros
        await client.hset(key, field, a_day_on)
        with caplog.at_level(logging.WARNING, logger="twochat_async"):
            await asyncio.wait_for(chat.did_types(), 15)  # before: a day's wait
            await chat.did_types()
        now = (seconds + 60) * 1_000_000
        assert int(await client.hget(key, "tat")) < now
    await client.aclose()
    (record,) = caplog.records
    assert "further ahead than any caller could have set it" in record.getMessage()
    assert fake.calls["GET /open/numbers/did-types"] == 3


async def test_a_deep_queue_is_not_taken_for_a_corrupt_budget(
    redis_url: str, fake: FakeTwoChat, caplog: pytest.LogCaptureFixture
) -> None:
    """A budget 900 slots ahead (as 900 queued callers leave it) is a queue: the next caller
    books the slot after them, nothing is reset, nothing is logged."""
    limit = RedisRateLimit(redis_url, per_minute=60)
    client = redis.asyncio.Redis.from_url(redis_url)
    with caplog.at_level(logging.WARNING, logger="twochat_async"):
        async with TwoChatSession(API_KEY, base_url=fake.base_url, rate_limit=limit) as chat:
            await chat.did_types()
            (key,) = await client.keys("twochat:budget:*")
            seconds, micros = await client.time()
            queued = (seconds + 900 * 1.03) * 1_000_000 + micros  # 900 slots at 60/min
            await client.hset(key, "tat", round(queued))
            waiter = asyncio.create_task(chat.did_types())
            await until_changed(client, [str(round(queued)).encode()])
            (booked,) = await tat(client)
            waiter.cancel()
            await asyncio.gather(waiter, return_exceptions=True)
    await client.aclose()
    assert int(booked) - round(queued) == round(1.03 * 1_000_000)  # one slot on
    assert caplog.records == []
    assert fake.calls["GET /open/numbers/did-types"] == 1


async def test_per_minute_account_survives_a_429_on_reading_the_account(
    redis_url: str, fake: FakeTwoChat
) -> None:
    """The account's limit is read before any slot is booked; a 429 on that read pauses
    nothing in Redis (nothing is known yet) and the call goes on."""
    fake.script(Reply(429, json=envelope("Too many requests"), headers={"Retry-After": "1"}))
    limit = RedisRateLimit(redis_url, per_minute="account")
    async with TwoChatSession(API_KEY, base_url=fake.base_url, rate_limit=limit) as chat:
        assert len(await chat.did_types()) > 0
    assert fake.calls["GET /open/info"] == 2
