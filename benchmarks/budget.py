"""The rate budget as a fleet feels it: 429s, budget used, Redis connections, and how long
a purchase waits behind a queue, against the stand-in's sliding window (docs/performance.md).
tests/test_fleet.py asserts the goals on these runs."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from benchmarks.common import API_KEY, GROUP_ID, Result, log, result, spawn, table
from benchmarks.servers import Servers, StandIn

#: The stand-in's window, in seconds: 2Chat's minute, scaled (2Chat's 3 % margin over a
#: 60 s window is 1.8 s of jitter; over this one, 180 ms).
WINDOW = 6.0
#: The group of the purchase that is timed behind the queue.
MONEY_GROUP = "money-group"


def window_limit(per_minute: int) -> int:
    """Requests the stand-in admits in any :data:`WINDOW` at ``per_minute``."""
    return max(1, round(per_minute * WINDOW / 60))


@contextlib.contextmanager
def saturated() -> Iterator[None]:
    """Every core kept busy by a process of its own while the block runs."""
    burners = [
        subprocess.Popen([sys.executable, "-c", "while True: pass"])
        for _ in range(os.cpu_count() or 2)
    ]
    try:
        yield
    finally:
        for burner in burners:
            burner.kill()
            burner.wait()


def connections_to(port: int) -> int:
    """How many TCP connections this process has established to ``port`` (Linux's /proc)."""
    inodes = set()
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            link = os.readlink(f"/proc/self/fd/{fd}")
            if link.startswith("socket:["):
                inodes.add(link[8:-1])
    count = 0
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        remote, state, inode = fields[2], fields[3], fields[9]
        count += state == "01" and int(remote.split(":")[1], 16) == port and inode in inodes
    return count


def worker(job: Result) -> Result:
    """In a child: ``job["calls"]`` reserve()s at once, from the wall-clock time read from
    stdin once it printed ``ready`` (processes started together call together); with
    ``job["money"]``, one purchase(). With ``job["until_money"]`` the queued calls are
    cancelled once the stand-in has seen the purchase: its runs need not drain the queue."""
    from twochat_async import TwoChatSession

    limit: Any = job["per_minute"]
    redis_port = None
    if job["redis_url"]:
        from twochat_async.redis import RedisRateLimit

        limit = RedisRateLimit(job["redis_url"], per_minute=limit)
        redis_port = int(job["redis_url"].rsplit(":", 1)[1].split("/")[0])
    print("ready", flush=True)
    start_at = float(sys.stdin.readline())
    peak = 0

    async def sample() -> None:
        nonlocal peak
        while redis_port is not None:
            peak = max(peak, connections_to(redis_port))
            await asyncio.sleep(0.02)

    async def main() -> Result:
        out: Result = {}
        standin = StandIn(job["url"])
        async with TwoChatSession(API_KEY, base_url=job["url"], rate_limit=limit) as chat:
            sampler = asyncio.create_task(sample())
            await asyncio.sleep(max(0.0, start_at - time.time()))
            began = time.time()
            tasks = [
                asyncio.create_task(chat.reserve(f"{GROUP_ID}-{job['n']}-{i}"))
                for i in range(job["calls"])
            ]
            await standin.reached(1)  # once the first reserve() has, every task has queued
            if job.get("money"):
                out["issued_after"] = await standin.reached()
                started = time.perf_counter()
                await chat.purchase(MONEY_GROUP)
                out["waited_s"] = time.perf_counter() - started
            if job.get("until_money"):
                await standin.reached(purchases=1)
                for task in tasks:
                    task.cancel()
            outcomes = await asyncio.gather(*tasks, return_exceptions=True)
            sampler.cancel()
        failed = [
            repr(o)[:200]
            for o in outcomes
            if isinstance(o, BaseException) and not isinstance(o, asyncio.CancelledError)
        ]
        return out | {
            "began": began,
            "ended": time.time(),
            "failed": len(failed),
            "failures": failed[:3],
            "redis_connections": peak,
        }

    return asyncio.run(main())


def run_fleet(
    standin: StandIn,
    processes: int,
    calls: int,
    per_minute: int,
    redis: str | None,
    *,
    loaded: bool = False,
    money: bool = False,
) -> Result:
    """``calls`` split over ``processes`` workers started together; what the stand-in counted.
    With ``money``, the first worker also times a purchase() issued once the calls queue."""
    standin.reset(window_limit(per_minute), WINDOW)
    job = {"url": standin.url, "per_minute": per_minute, "redis_url": redis, "until_money": money}
    each = calls // processes
    with saturated() if loaded else contextlib.nullcontext():
        procs = [
            spawn("budget.worker", job | {"calls": each, "n": n, "money": money and n == 0})
            for n in range(processes)
        ]
        for proc in procs:
            if proc.stdout is None or proc.stdout.readline().strip() != "ready":
                raise RuntimeError(f"a budget worker did not start: {result(proc)}")
        start_at = f"{time.time() + 0.3}\n"
        for proc in procs:
            if proc.stdin is not None:
                proc.stdin.write(start_at)
                proc.stdin.flush()
        workers = [result(proc) for proc in procs]
    arrivals = standin.arrivals()
    admitted = [t for t, _, status, _ in arrivals if status != 429]
    span = admitted[-1] - admitted[0] if len(admitted) > 1 else 0.0
    out: Result = {
        "processes": processes,
        "loaded": loaded,
        "calls": each * processes,
        "succeeded": sum(each - w["failed"] for w in workers),
        "requests": len(arrivals),
        "429s": len(arrivals) - len(admitted),
        "wall_s": max(w["ended"] for w in workers) - min(w["began"] for w in workers),
        # The pace of the admitted requests at the server, as a share of the budget's pace.
        "budget_used": (len(admitted) - 1) / (per_minute / 60 * span) if span else None,
        "redis_connections": max(w["redis_connections"] for w in workers),
        "failures": [f for w in workers for f in w["failures"]][:3],
        "order": [(what, whose) for _, what, _, whose in arrivals],
    }
    if money:
        sent = next(i for i, (_, what, _, _) in enumerate(arrivals) if what == "purchase")
        out |= {
            "waited_s": workers[0]["waited_s"],
            "requests_ahead": sent - workers[0]["issued_after"],
        }
    return out


def fleets(
    servers: Servers, calls: int, per_minute: int, *, money: bool, loads: tuple[bool, ...]
) -> Result:
    """The budget section (1, 4 and 8 processes making ``calls`` in all) or, with ``money``,
    the purchase section (1 and 4, a purchase() behind ``calls`` queued reserve()s)."""
    out: Result = {"calls": calls, "per_minute": per_minute, "limit": window_limit(per_minute)}
    out["runs"] = runs = []
    for processes in (1, 4) if money else (1, 4, 8):
        redis = None if processes == 1 else servers.redis
        if processes > 1 and redis is None:
            runs.append({"processes": processes, "status": "redis-server not installed"})
            continue
        for loaded in loads:
            what = "a purchase behind " if money else ""
            log(f"{what}{calls} calls, {processes} process(es), {'loaded' if loaded else 'idle'}")
            run = run_fleet(
                servers.standin, processes, calls, per_minute, redis, loaded=loaded, money=money
            )
            runs.append({k: v for k, v in run.items() if k != "order"})
    return out


def budget_report(out: Result) -> list[str]:
    """The budget section as text lines."""

    def cells(run: Result) -> list[object]:
        counted = [run["calls"], run["succeeded"], run["requests"], run["429s"]]
        return [
            *counted,
            f"{run['budget_used'] or 0:.0%}",
            run["redis_connections"],
            f"{run['wall_s']:.1f} s",
        ]

    header = ["processes", "cores", "calls", "succeeded", "requests", "429s", "budget used"]
    rows = _rows(out, cells)
    return [
        f"budget: calls at once, rate_limit={out['per_minute']} (shared in Redis by several "
        f"processes); the stand-in refuses more than {out['limit']} requests in any "
        f"{WINDOW:g} s (2Chat's sliding minute, scaled)",
        *table([*header, "Redis conns/process", "wall"], rows),
    ]


def purchase_report(out: Result) -> list[str]:
    """The purchase section as text lines."""
    rows = _rows(out, lambda r: [f"{r['waited_s']:.2f} s", r["requests_ahead"], r["429s"]])
    first_come = out["calls"] / (out["per_minute"] / 60)
    return [
        f"purchase() issued behind {out['calls']} queued reserve()s in all, "
        f"rate_limit={out['per_minute']}/min (first come first served: {first_come:.1f} s)",
        *table(["processes", "cores", "waited", "requests sent first", "429s"], rows),
    ]


def _rows(out: Result, cells: Callable[[Result], list[object]]) -> list[list[object]]:
    """A row per run: its processes, its load, then ``cells(run)`` (or why it did not run)."""
    return [
        [run["processes"], run["status"]]
        if "status" in run
        else [run["processes"], "loaded" if run["loaded"] else "idle", *cells(run)]
        for run in out["runs"]
    ]
