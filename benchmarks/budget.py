"""The rate budget as a fleet feels it: 429s met, budget used, Redis connections, and how
long a purchase waits behind a queue.

Every session here has ``rate_limit=per_minute`` (shared through one `RedisRateLimit`
when there are several processes) and talks to the stand-in, which refuses more than
``per_minute * WINDOW / 60`` requests of the API key in any ``WINDOW`` s: 2Chat's sliding
minute, scaled so that a run takes seconds. A loaded run has every core kept busy by
processes of its own meanwhile. tests/test_fleet.py asserts the goals on these runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from benchmarks.common import API_KEY, GROUP_ID, Result, log, result, spawn, table
from benchmarks.servers import Servers, StandIn, counts

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
    """In a child: ``job["calls"]`` reserve()s at once; with ``job["money"]``, one purchase().

    Prints ``ready`` once built, then starts its calls at the wall-clock time read from
    stdin, so that processes started together call together however slowly each started.
    With ``job["until_money"]`` the queued calls are cancelled once the stand-in has seen
    the purchase (the purchase's runs need not drain their queues).
    """
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
        import aiohttp

        out: Result = {}
        async with (
            TwoChatSession(API_KEY, base_url=job["url"], rate_limit=limit) as chat,
            aiohttp.ClientSession() as probe,
        ):
            sampler = asyncio.create_task(sample())
            await asyncio.sleep(max(0.0, start_at - time.time()))
            began = time.time()
            tasks = [
                asyncio.create_task(chat.reserve(f"{GROUP_ID}-{job['n']}-{i}"))
                for i in range(job["calls"])
            ]
            # Once the first reserve() reached the stand-in, every task has queued.
            while not (await counts(probe, job["url"]))[0]:  # noqa: ASYNC110 - in the server
                await asyncio.sleep(0.005)
            if job.get("money"):
                out["issued_after"] = (await counts(probe, job["url"]))[0]
                started = time.perf_counter()
                await chat.purchase(MONEY_GROUP)
                out["waited_s"] = time.perf_counter() - started
            while job.get("until_money") and not (await counts(probe, job["url"]))[1]:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
            if job.get("until_money"):
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

    With ``money``, the first worker also times a purchase() issued once the calls queue,
    and every worker stops once it is sent.
    """
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


def _fleets(
    servers: Servers, calls: int, per_minute: int, *, money: bool, loads: tuple[bool, ...]
) -> list[Result]:
    runs: list[Result] = []
    sizes = (1, 4) if money else (1, 4, 8)
    for processes in sizes:
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
    return runs


def budget(
    servers: Servers, *, calls: int, per_minute: int, loads: tuple[bool, ...] = (False, True)
) -> Result:
    """The budget section: 1, 4 and 8 processes making ``calls`` in all, idle and loaded."""
    out: Result = {"per_minute": per_minute, "window_s": WINDOW, "limit": window_limit(per_minute)}
    return out | {"runs": _fleets(servers, calls, per_minute, money=False, loads=loads)}


def budget_report(out: Result) -> list[str]:
    """The budget section as text lines."""
    rows: list[list[object]] = []
    for run in out["runs"]:
        if "status" in run:
            rows.append([run["processes"], run["status"], *[""] * 7])
            continue
        used = f"{run['budget_used'] or 0:.0%}"
        load = "loaded" if run["loaded"] else "idle"
        wall = f"{run['wall_s']:.1f} s"
        counted = [run["calls"], run["succeeded"], run["requests"], run["429s"], used]
        rows.append([run["processes"], load, *counted, run["redis_connections"], wall])
    header = ["processes", "cores", "calls", "succeeded", "requests", "429s", "budget used"]
    return [
        f"budget: calls at once, rate_limit={out['per_minute']} (shared in Redis by several "
        f"processes); the stand-in refuses more than {out['limit']} requests in any "
        f"{out['window_s']:g} s (2Chat's sliding minute, scaled)",
        *table([*header, "Redis conns/process", "wall"], rows),
    ]


def purchase(
    servers: Servers, *, queue: int, per_minute: int, loads: tuple[bool, ...] = (False, True)
) -> Result:
    """The purchase section: a purchase() issued behind ``queue`` queued reserve()s."""
    runs = _fleets(servers, queue, per_minute, money=True, loads=loads)
    return {"queue": queue, "per_minute": per_minute, "runs": runs}


def purchase_report(out: Result) -> list[str]:
    """The purchase section as text lines."""
    rows: list[list[object]] = []
    fifo = out["queue"] / (out["per_minute"] / 60)
    for run in out["runs"]:
        if "status" in run:
            rows.append([run["processes"], run["status"], "", "", ""])
            continue
        load = "loaded" if run["loaded"] else "idle"
        waited = f"{run['waited_s']:.2f} s"
        rows.append([run["processes"], load, waited, run["requests_ahead"], run["429s"]])
    return [
        f"purchase() issued behind {out['queue']} queued reserve()s in all, "
        f"rate_limit={out['per_minute']}/min (first come first served: {fifo:.1f} s)",
        *table(["processes", "cores", "waited", "requests sent first", "429s"], rows),
    ]
