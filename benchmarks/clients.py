"""The benchmarked clients, and the worker that times one of them in a fresh process.

Every client makes the same call: ``POST /open/numbers/reservations`` with
``{"group_id": ...}`` and the API key header, checks the 201, decodes the JSON and turns
``data.reservation_details`` into a record with timezone-aware ``created_at`` and
``expires_at``. The SDK does it with ``TwoChatSession.reserve()``; the others by hand, as
a user would write it without the SDK.

The worker is started by :mod:`benchmarks.measure` as
``python -m benchmarks.clients '<json job>'``, with glibc malloc pinned in its
environment, and prints one JSON line of results. The full benchmark gives every
measurement a fresh process, so clients share no heap, cache or GC state (``--quick``
batches them per client to start fewer interpreters). Each measurement builds its
client, checks one answer, and warms up (which also opens the pooled connections) before
the clock starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import resource
import sys
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from benchmarks.server import fetch_stats

API_KEY = "bench-key-0123456789"
GROUP_ID = "abc-123"
NUMBER = "+12135551234"
CREATED_AT = datetime(2024, 1, 15, 10, 30, tzinfo=timezone.utc)
RESERVE = "/open/numbers/reservations"

AsyncCall = Callable[[str], Awaitable[Any]]
SyncCall = Callable[[str], Any]


@dataclass(frozen=True, slots=True)
class RawReservation:
    """What the hand-written clients build: the SDK's ``Reservation`` fields."""

    uuid: str
    number: str
    created_at: datetime
    expires_at: datetime
    group_id: str


def parse_time(value: str) -> datetime:
    """``datetime.fromisoformat`` with the ``Z`` suffix Python 3.10 does not accept."""
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def to_record(payload: dict[str, Any], group_id: str) -> RawReservation:
    """The field extraction a user writes by hand."""
    details = payload["data"]["reservation_details"]
    return RawReservation(
        details["uuid"],
        details["number"],
        parse_time(details["created_at"]),
        parse_time(details["expires_at"]),
        group_id,
    )


@contextlib.asynccontextmanager
async def sdk_client(base_url: str, options: dict[str, Any]) -> AsyncIterator[AsyncCall]:
    """``TwoChatSession.reserve``; ``options`` are extra constructor keywords."""
    from twochat_async import TwoChatSession

    async with TwoChatSession(API_KEY, base_url=base_url, **options) as chat:
        yield chat.reserve


@contextlib.asynccontextmanager
async def aiohttp_client(base_url: str, options: dict[str, Any]) -> AsyncIterator[AsyncCall]:
    """One ``aiohttp.ClientSession``: ``post(json=...)``, ``await resp.json()``."""
    import aiohttp

    url = base_url + RESERVE
    headers = {"X-User-API-Key": API_KEY}
    async with aiohttp.ClientSession() as session:

        async def reserve(group_id: str) -> RawReservation:
            async with session.post(url, json={"group_id": group_id}, headers=headers) as resp:
                if resp.status != 201:
                    raise RuntimeError(f"unexpected status {resp.status}")
                payload = await resp.json()
            return to_record(payload, group_id)

        yield reserve


@contextlib.asynccontextmanager
async def httpx_client(base_url: str, options: dict[str, Any]) -> AsyncIterator[AsyncCall]:
    """One ``httpx.AsyncClient`` with aiohttp's pool size (100, all kept alive)."""
    import httpx

    url = base_url + RESERVE
    headers = {"X-User-API-Key": API_KEY}
    # httpx keeps only 20 idle connections by default; at concurrency 64 it would reconnect
    # all the time. Matching aiohttp's 100 makes the comparison about the client, not that.
    limits = httpx.Limits(max_connections=100, max_keepalive_connections=100)
    async with httpx.AsyncClient(limits=limits, timeout=30.0) as client:

        async def reserve(group_id: str) -> RawReservation:
            resp = await client.post(url, json={"group_id": group_id}, headers=headers)
            if resp.status_code != 201:
                raise RuntimeError(f"unexpected status {resp.status_code}")
            return to_record(resp.json(), group_id)

        yield reserve


@contextlib.contextmanager
def requests_client(base_url: str, options: dict[str, Any]) -> Iterator[SyncCall]:
    """``requests.Session`` as in 2Chat's snippet; one session per thread when threaded."""
    import requests

    url = base_url + RESERVE
    headers = {"X-User-API-Key": API_KEY}
    local = threading.local()
    sessions: list[requests.Session] = []

    def reserve(group_id: str) -> RawReservation:
        session = getattr(local, "session", None)
        if session is None:
            # requests.Session is not documented as thread-safe: one per thread.
            session = local.session = requests.Session()
            sessions.append(session)
        resp = session.post(url, json={"group_id": group_id}, headers=headers, timeout=30)
        if resp.status_code != 201:
            raise RuntimeError(f"unexpected status {resp.status_code}")
        return to_record(resp.json(), group_id)

    try:
        yield reserve
    finally:
        for session in sessions:
            session.close()


ASYNC_CLIENTS = {
    "sdk": sdk_client,
    "aiohttp": aiohttp_client,
    "httpx": httpx_client,
}
SYNC_CLIENTS = {"requests": requests_client}
#: Modules a client needs beyond the standard library; a missing one makes it "n/a".
REQUIRES = {
    "sdk": "twochat_async",
    "aiohttp": "aiohttp",
    "httpx": "httpx",
    "requests": "requests",
}


def check(record: Any) -> None:
    """Fail loudly if a client did not do the whole job (so no client is timed doing less)."""
    created = record.created_at
    if (record.number, record.group_id, created) != (NUMBER, GROUP_ID, CREATED_AT) or (
        created.utcoffset() is None or record.expires_at <= created
    ):
        raise AssertionError(f"wrong record: {record!r}")


async def run_async(call: AsyncCall, n: int, concurrency: int) -> None:
    """Make ``n`` calls with at most ``concurrency`` in flight; the same loop for all."""
    if concurrency == 1:
        for _ in range(n):
            await call(GROUP_ID)
        return
    remaining = n

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            await call(GROUP_ID)

    await asyncio.gather(*(worker() for _ in range(min(concurrency, n))))


def run_threads(call: SyncCall, n: int, concurrency: int, pool: ThreadPoolExecutor) -> None:
    """Make ``n`` calls from ``concurrency`` threads (a plain loop when 1)."""
    if concurrency == 1:
        for _ in range(n):
            call(GROUP_ID)
        return
    counter = iter(range(n))
    lock = threading.Lock()

    def worker() -> None:
        while True:
            with lock:
                if next(counter, None) is None:
                    return
            call(GROUP_ID)

    for future in [pool.submit(worker) for _ in range(min(concurrency, n))]:
        future.result()


def minor_faults() -> int:
    """Minor page faults of this process so far (every thread)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


class Clock:
    """Times one run: wall, CPU and minor page faults of this process, the server's CPU."""

    def __init__(self, base_url: str, n: int) -> None:
        self._url, self._n = base_url, n
        gc.collect()  # start every run with the same (empty) young generations
        self._server = fetch_stats(base_url)  # blocking on purpose: outside the window
        self._faults = minor_faults()
        self._wall, self._cpu = time.perf_counter(), time.process_time()

    def stop(self) -> dict[str, float]:
        """Stop the clock and return the run's measurements."""
        cpu, wall = time.process_time() - self._cpu, time.perf_counter() - self._wall
        faults = minor_faults() - self._faults
        after = fetch_stats(self._url)
        server_cpu = after["cpu_s"] - self._server["cpu_s"]
        return {
            "wall_s": wall,
            "cpu_s": cpu,
            "calls_per_s": self._n / wall,
            "cpu_us_per_call": cpu / self._n * 1e6,
            # Near 0 when malloc keeps socket read buffers on the heap; about 2 per call
            # when each read maps a buffer of its own (see benchmarks.measure.PINNED_MALLOC).
            "minor_faults": faults,
            "minor_faults_per_call": faults / self._n,
            "server_cpu_s": server_cpu,
            # The server's share of one core during the run; near 1.0 it is the bottleneck.
            "server_busy": server_cpu / wall,
            "server_requests": after["requests"] - self._server["requests"] - 1,  # less stats
        }


def measure(job: dict[str, Any]) -> dict[str, Any]:
    """Time ``job["n"]`` calls of one client at one concurrency, after a warm-up."""
    name, url = job["client"], job["base_url"]
    n, concurrency, warmup = job["n"], job["concurrency"], job["warmup"]
    options = job["options"]
    if name in SYNC_CLIENTS:
        with (
            ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool,
            SYNC_CLIENTS[name](url, options) as call,
        ):
            check(call(GROUP_ID))
            run_threads(call, warmup, concurrency, pool)
            clock = Clock(url, n)
            run_threads(call, n, concurrency, pool)
            return clock.stop()

    async def main() -> dict[str, float]:
        async with ASYNC_CLIENTS[name](url, options) as call:
            check(await call(GROUP_ID))
            await run_async(call, warmup, concurrency)
            clock = Clock(url, n)
            await run_async(call, n, concurrency)
            return clock.stop()

    return asyncio.run(main())


def max_rss_mib() -> float:
    """Peak resident set size of this process so far, in MiB.

    ``VmHWM`` where procfs has it: it starts afresh at exec, where Linux's ``ru_maxrss``
    starts at the peak of the process that spawned this one (here the benchmark's runner).
    """
    try:
        with open("/proc/self/status") as status:
            kib = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
    except (OSError, StopIteration):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024  # bytes vs KiB
    return kib / 1024


def measure_rss(job: dict[str, Any]) -> dict[str, Any]:
    """Peak RSS with ``job["n"]`` calls in flight at once, against a server that waits 2 s.

    ``job["base_url"]`` is the server's slow base path. The calls beyond the pool's 100
    connections wait for one, as a user's would; RSS is read once every call has started
    and before any answer has come, then the calls are cancelled.
    """
    name, url, n = job["client"], job["base_url"], job["n"]

    async def main() -> dict[str, Any]:
        async with ASYNC_CLIENTS[name](url, job["options"]) as call:
            check(await call(GROUP_ID))
            await run_async(call, job["warmup"], job["warmup"])  # opens the pool: 2 s
            gc.collect()
            setup = max_rss_mib()
            calls = asyncio.gather(*(call(GROUP_ID) for _ in range(n)))
            await asyncio.sleep(SETTLE_SECONDS)
            peak = max_rss_mib()
            calls.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await calls
            return {
                "setup_mib": setup,
                "peak_mib": peak,
                "in_flight": n,
                "kib_per_call": (peak - setup) * 1024 / n,
            }

    return asyncio.run(main())


#: How long the memory runs wait for every call to have started (the server waits 2 s).
SETTLE_SECONDS = 1.5


class _Warnings(logging.Handler):
    """Counts the SDK's warnings (a RedisRateLimit falling back to a per-process limit)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def budget_options(job: dict[str, Any]) -> dict[str, Any]:
    """The session's keywords: ``job["options"]``, its ``rate_limit`` kept in Redis if the
    job names a ``redis_url`` (``RedisRateLimit(redis_url, per_minute=rate_limit)``)."""
    options = dict(job["options"])
    if job.get("redis_url"):
        from twochat_async.redis import RedisRateLimit

        options["rate_limit"] = RedisRateLimit(job["redis_url"], per_minute=options["rate_limit"])
    return options


def measure_budget(job: dict[str, Any]) -> dict[str, Any]:
    """``job["n"]`` SDK calls at once against the sliding-window stand-in; what they cost.

    Returns the calls that succeeded and failed, the wall time and the SDK's warnings.
    Alone it also returns the requests the server counted (the account's budget used) and
    its 429s. With ``"start": "stdin"`` in the job it is one of several processes sharing a
    budget (``redis_url``), and the parent reads the server's counts around all of them:
    once its imports are done it prints ``ready`` and reads from standard input the
    wall-clock time (``time.time()``) at which every process starts its calls, so that
    processes launched together call together however long each took to start.
    """
    url, n = job["base_url"], job["n"]
    stats_url = url.rsplit("/", 1)[0]
    options = budget_options(job)  # imports the SDK (and redis) before the start
    warnings = _Warnings()
    logging.getLogger("twochat_async").addHandler(warnings)
    start_at: float | None = None
    if job.get("start") == "stdin":
        print("ready", flush=True)
        start_at = float(sys.stdin.readline())

    async def main() -> dict[str, Any]:
        before = None if start_at is not None else fetch_stats(stats_url)
        async with ASYNC_CLIENTS["sdk"](url, options) as call:
            if start_at is not None:
                await asyncio.sleep(max(0.0, start_at - time.time()))
            began, started = time.time(), time.perf_counter()
            outcomes = await asyncio.gather(
                *(call(GROUP_ID) for _ in range(n)), return_exceptions=True
            )
            wall, ended = time.perf_counter() - started, time.time()
        failed = [o for o in outcomes if isinstance(o, BaseException)]
        result: dict[str, Any] = {
            "calls": n,
            "ok": n - len(failed),
            "failed": len(failed),
            "failure": repr(failed[0])[:200] if failed else None,
            "wall_s": wall,
            "warnings": len(warnings.messages),
            "first_warning": warnings.messages[0][:200] if warnings.messages else None,
        }
        if before is None:
            # Wall-clock times, comparable across processes: when the calls began and ended.
            return result | {"began_at": began, "ended_at": ended}
        after = fetch_stats(stats_url)
        return result | {
            "requests": after["window_requests"] - before["window_requests"],
            "429s": after["window_429"] - before["window_429"],
        }

    return asyncio.run(main())


def measure_pair(job: dict[str, Any]) -> dict[str, Any]:
    """Two async clients in one process, timed in alternating blocks; each block's numbers.

    Both are built, checked and warmed up; then each of ``job["rounds"]`` rounds times one
    block of ``job["n"]`` calls of each, the first client first in even rounds and last in
    odd ones (ABBA), so that a drift of the machine within a round falls on both alike.
    Returns, per client, the CPU microseconds per call and the calls/s of every block.
    """
    names, url = job["clients"], job["base_url"]
    block, rounds, concurrency = job["n"], job["rounds"], job["concurrency"]

    async def main() -> dict[str, Any]:
        async with contextlib.AsyncExitStack() as stack:
            calls = [
                await stack.enter_async_context(ASYNC_CLIENTS[name](url, {})) for name in names
            ]
            for call in calls:
                check(await call(GROUP_ID))
                await run_async(call, job["warmup"], concurrency)
            cpu: dict[str, list[float]] = {name: [] for name in names}
            speed: dict[str, list[float]] = {name: [] for name in names}
            for round_ in range(rounds):
                for i in (0, 1) if round_ % 2 == 0 else (1, 0):
                    gc.collect()  # every block starts with the same (empty) young generations
                    wall, started = time.perf_counter(), time.process_time()
                    await run_async(calls[i], block, concurrency)
                    cpu[names[i]].append((time.process_time() - started) / block * 1e6)
                    speed[names[i]].append(block / (time.perf_counter() - wall))
            return {"cpu_us_per_call": cpu, "calls_per_s": speed}

    return asyncio.run(main())


MEASURES = {
    "time": measure,
    "rss": measure_rss,
    "budget": measure_budget,
    "pair": measure_pair,
}


def main(argv: list[str] | None = None) -> None:
    """Run the measurements of the JSON job given as argument; print them as a JSON list.

    The job is ``{"runs": [run, ...]}``; each run names ``kind`` (``"time"``, ``"rss"`` for
    a peak-RSS run or ``"budget"`` for the sliding-window run, each alone in its process,
    or ``"pair"``: two ``clients`` in alternating blocks, see :func:`measure_pair`),
    ``client``, ``base_url``, ``n``, ``concurrency``, ``warmup`` and ``options`` (client
    constructor keywords), as built by :func:`benchmarks.measure.run_job`. A budget run
    may add ``redis_url`` (its ``rate_limit`` becomes a ``RedisRateLimit`` there) and
    ``"start": "stdin"`` (it starts its calls at a time read from stdin; see
    :func:`measure_budget`).
    """
    job = json.loads((argv if argv is not None else sys.argv[1:])[0])
    results = [MEASURES[run["kind"]](run) for run in job["runs"]]
    print(json.dumps(results), flush=True)


if __name__ == "__main__":
    main()
