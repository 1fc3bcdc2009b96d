"""The rate budget as a saturating user feels it: 429s met, budget used, a purchase's wait.

Every session here has ``rate_limit=per_minute`` and talks to the stand-in, which refuses
more than ``per_minute / 60`` requests of the API key in any 1 s: 2Chat's sliding minute,
scaled so that a run takes seconds.
"""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Any

from benchmarks.common import API_KEY, GROUP_ID, Result, child, log, result, spawn, table
from benchmarks.servers import Servers, StandIn, arrivals

#: The stand-in's window, in seconds: 2Chat's minute, scaled.
WINDOW = 1.0


def window_limit(per_minute: int) -> int:
    """Requests the stand-in admits in any :data:`WINDOW` at ``per_minute``."""
    return max(1, round(per_minute * WINDOW / 60))


def worker(job: Result) -> Result:
    """In a child: ``job["calls"]`` reserve()s at once, their rate limit shared in Redis or not.

    Prints ``ready`` once built, then starts its calls at the wall-clock time read from
    stdin, so that processes started together call together however slowly each started.
    """
    from twochat_async import TwoChatSession

    limit: Any = job["per_minute"]
    if job["redis_url"]:
        from twochat_async.redis import RedisRateLimit

        limit = RedisRateLimit(job["redis_url"], per_minute=limit)
    print("ready", flush=True)
    start_at = float(sys.stdin.readline())

    async def main() -> Result:
        async with TwoChatSession(API_KEY, base_url=job["url"], rate_limit=limit) as chat:
            await asyncio.sleep(max(0.0, start_at - time.time()))
            began = time.time()
            calls = (chat.reserve(GROUP_ID) for _ in range(job["calls"]))
            outcomes = await asyncio.gather(*calls, return_exceptions=True)
        failed = [repr(o)[:200] for o in outcomes if isinstance(o, BaseException)]
        return {"began": began, "ended": time.time(), "failed": len(failed), "failures": failed[:3]}

    return asyncio.run(main())


def _run(
    standin: StandIn, processes: int, calls: int, per_minute: int, redis: str | None
) -> Result:
    """``calls`` split over ``processes`` workers started together; what the stand-in counted."""
    standin.reset(window_limit(per_minute), WINDOW)
    job = {"url": standin.url, "per_minute": per_minute, "redis_url": redis}
    each = calls // processes
    procs = [spawn("budget.worker", job | {"calls": each}) for _ in range(processes)]
    for proc in procs:
        if proc.stdout is None or proc.stdout.readline().strip() != "ready":
            raise RuntimeError(f"a budget worker did not start: {result(proc)}")
    start_at = f"{time.time() + 0.2}\n"
    for proc in procs:
        if proc.stdin is not None:
            proc.stdin.write(start_at)
            proc.stdin.flush()
    workers = [result(proc) for proc in procs]
    arrivals = standin.arrivals()
    wall = max(w["ended"] for w in workers) - min(w["began"] for w in workers)
    admitted = [t for t, _, status in arrivals if status != 429]
    span = admitted[-1] - admitted[0] if len(admitted) > 1 else 0.0
    return {
        "processes": processes,
        "calls": each * processes,
        "succeeded": sum(each - w["failed"] for w in workers),
        "requests": len(arrivals),
        "429s": len(arrivals) - len(admitted),
        "wall_s": wall,
        # The pace of the admitted requests at the server, as a share of the budget's pace.
        "budget_used": (len(admitted) - 1) / (per_minute / 60 * span) if span else None,
        "failures": [f for w in workers for f in w["failures"]][:3],
    }


def budget(servers: Servers, *, calls: int, per_minute: int) -> Result:
    """The budget section: one process, then 4 sharing a RedisRateLimit (if redis-server is)."""
    out: Result = {"per_minute": per_minute, "window_s": WINDOW, "limit": window_limit(per_minute)}
    log(f"budget: {calls} calls at {per_minute}/min, one process")
    out["one_process"] = _run(servers.standin, 1, calls, per_minute, None)
    out["four_processes"] = {"status": "redis-server not installed"}
    if servers.redis is not None:
        log("budget: the same calls from 4 processes sharing one RedisRateLimit")
        out["four_processes"] = _run(servers.standin, 4, calls, per_minute, servers.redis)
    return out


def budget_report(out: Result) -> list[str]:
    """The budget section as text lines."""
    rows: list[list[object]] = []
    for key, title in (("one_process", "1"), ("four_processes", "4, one RedisRateLimit")):
        run = out[key]
        if "status" in run:
            rows.append([title, run["status"], "", "", "", "", ""])
            continue
        used, wall = f"{run['budget_used'] or 0:.0%}", f"{run['wall_s']:.1f} s"
        rows.append(
            [title, run["calls"], run["succeeded"], run["requests"], run["429s"], used, wall]
        )
    header = ["processes", "calls", "succeeded", "requests", "429s", "budget used", "wall"]
    return [
        f"budget: calls at once, rate_limit={out['per_minute']}; the stand-in refuses more than "
        f"{out['limit']} requests in any {out['window_s']:g} s (2Chat's sliding minute, scaled)",
        *table(header, rows),
    ]


def purchase_wait(job: Result) -> Result:
    """In a child: queue ``job["queue"]`` reserve()s, then time one purchase() behind them."""
    import aiohttp

    from twochat_async import TwoChatSession

    async def main() -> Result:
        async with (
            TwoChatSession(API_KEY, base_url=job["url"], rate_limit=job["per_minute"]) as chat,
            aiohttp.ClientSession() as probe,
        ):
            queued = [asyncio.create_task(chat.reserve(GROUP_ID)) for _ in range(job["queue"])]
            # Once the first reserve() reached the stand-in, every task has queued.
            while not await arrivals(probe, job["url"]):  # noqa: ASYNC110 - in the server
                await asyncio.sleep(0.005)
            started = time.perf_counter()
            await chat.purchase(GROUP_ID)
            waited = time.perf_counter() - started
            answered = sum(task.done() for task in queued)
            for task in queued:
                task.cancel()
            await asyncio.gather(*queued, return_exceptions=True)
        return {"waited_s": waited, "reserves_answered_first": answered}

    return asyncio.run(main())


def purchase(servers: Servers, *, queue: int, per_minute: int) -> Result:
    """The purchase section: how long purchase() waits behind ``queue`` queued reserve()s."""
    standin = servers.standin
    log(f"purchase: behind {queue} queued reserve()s at {per_minute}/min")
    standin.reset(window_limit(per_minute), WINDOW)
    job = {"url": standin.url, "queue": queue, "per_minute": per_minute}
    out: Result = child("budget.purchase_wait", job)
    arrivals = standin.arrivals()
    ahead = next((i for i, (_, what, _) in enumerate(arrivals) if what == "purchase"), None)
    return out | {
        "queue": queue,
        "per_minute": per_minute,
        "fifo_wait_s": queue / (per_minute / 60),
        "requests_ahead": ahead,
        "429s": sum(status == 429 for *_, status in arrivals),
    }


def purchase_report(out: Result) -> list[str]:
    """The purchase section as text lines."""
    return [
        f"purchase() behind {out['queue']} queued reserve()s, rate_limit={out['per_minute']}/min",
        f"  waited {out['waited_s']:.1f} s (all of the queue first: {out['fifo_wait_s']:.1f} s); "
        f"{out['requests_ahead']} requests reached the server before it, "
        f"429s {out['429s']}",
    ]
