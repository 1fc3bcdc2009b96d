"""CPU per call of ``reserve()`` beside raw aiohttp and httpx, side by side in one process:
the same call, the 201 checked, a record with aware datetimes built (docs/performance.md)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import importlib.util
import os
import resource
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from benchmarks.common import API_KEY, GROUP_ID, PINNED_MALLOC, Result, child, log, quartiles, table
from benchmarks.servers import Servers

RESERVE = "/open/numbers/reservations"
#: The issue's done-when: reserve() costs at most this many times raw aiohttp's CPU.
TARGET = 1.10
Call = Callable[[str], Coroutine[Any, Any, Any]]


@dataclass(frozen=True, slots=True)
class RawReservation:
    """What the hand-written clients build: the SDK's ``Reservation`` fields."""

    uuid: str
    number: str
    created_at: datetime
    expires_at: datetime
    group_id: str


def to_record(payload: dict[str, Any], group_id: str) -> RawReservation:
    """The field extraction a user writes by hand (``Z`` replaced: Python 3.10 refuses it)."""
    details = payload["data"]["reservation_details"]
    return RawReservation(
        details["uuid"],
        details["number"],
        datetime.fromisoformat(details["created_at"].replace("Z", "+00:00")),
        datetime.fromisoformat(details["expires_at"].replace("Z", "+00:00")),
        group_id,
    )


@contextlib.asynccontextmanager
async def sdk(url: str, *, span: bool = True) -> AsyncIterator[Call]:
    """``TwoChatSession.reserve`` with its defaults; ``span=False``: without the
    OpenTelemetry wrapper around it, to measure what it costs with no provider configured."""
    from twochat_async import TwoChatSession

    async with TwoChatSession(API_KEY, base_url=url) as chat:
        wrapped = TwoChatSession.reserve
        yield chat.reserve if span else functools.partial(wrapped.__wrapped__, chat)  # type: ignore[attr-defined]


@contextlib.asynccontextmanager
async def raw_aiohttp(url: str) -> AsyncIterator[Call]:
    """One ``aiohttp.ClientSession``: ``post(json=...)``, ``await resp.json()``."""
    import aiohttp

    headers = {"X-User-API-Key": API_KEY}
    async with aiohttp.ClientSession() as session:

        async def reserve(group_id: str) -> RawReservation:
            async with session.post(
                url + RESERVE, json={"group_id": group_id}, headers=headers
            ) as r:
                if r.status != 201:
                    raise RuntimeError(f"unexpected status {r.status}")
                return to_record(await r.json(), group_id)

        yield reserve


@contextlib.asynccontextmanager
async def raw_httpx(url: str) -> AsyncIterator[Call]:
    """One ``httpx.AsyncClient``, its pool as large as aiohttp's (100, all kept alive)."""
    import httpx

    headers = {"X-User-API-Key": API_KEY}
    limits = httpx.Limits(max_connections=100, max_keepalive_connections=100)
    async with httpx.AsyncClient(limits=limits, timeout=30.0) as client:

        async def reserve(group_id: str) -> RawReservation:
            r = await client.post(url + RESERVE, json={"group_id": group_id}, headers=headers)
            if r.status_code != 201:
                raise RuntimeError(f"unexpected status {r.status_code}")
            return to_record(r.json(), group_id)

        yield reserve


CLIENTS: dict[str, Callable[[str], contextlib.AbstractAsyncContextManager[Call]]] = {
    "sdk": sdk,
    "sdk_no_span": functools.partial(sdk, span=False),
    "aiohttp": raw_aiohttp,
    "httpx": raw_httpx,
}
TITLES = {
    "sdk": "twochat_async reserve()",
    "sdk_no_span": "  the same without its span",
    "aiohttp": "raw aiohttp",
    "httpx": "httpx.AsyncClient",
}


async def run(call: Call, n: int, concurrency: int) -> None:
    """Make ``n`` calls, ``concurrency`` at a time, by the same loop for every client."""
    remaining = n

    async def one_at_a_time() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            await call(GROUP_ID)

    await asyncio.gather(*(one_at_a_time() for _ in range(min(concurrency, n))))


def measure(job: Result) -> Result:
    """In a child: per concurrency, each of ``rounds`` rounds times one block of each client,
    in order on even rounds and in reverse on odd ones (a drift of the machine falls on all
    alike); CPU us and minor page faults (near 0 while malloc is pinned) per call."""

    def faults() -> int:
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt

    async def main() -> Result:
        out: Result = {"malloc": {k: os.environ.get(k) for k in PINNED_MALLOC}}
        names: list[str] = job["clients"]
        async with contextlib.AsyncExitStack() as stack:
            calls = {n: await stack.enter_async_context(CLIENTS[n](job["url"])) for n in names}
            for conc in job["concurrencies"]:
                # httpx costs several times more per call: smaller blocks keep the run short.
                size = {n: job["block"] // (4 if n == "httpx" else 1) or 1 for n in names}
                for name in names:  # warm-up, which opens the connections
                    record = await calls[name](GROUP_ID)
                    if record.number != "+12135551234" or record.expires_at.utcoffset() is None:
                        raise AssertionError(f"wrong record: {record!r}")  # none may do less
                    await run(calls[name], size[name], conc)
                cell: Result = {"cpu_us": {n: [] for n in names}, "faults": {n: [] for n in names}}
                for round_ in range(job["rounds"]):
                    for name in names if round_ % 2 == 0 else names[::-1]:
                        gc.collect()  # every block starts with empty young generations
                        f0, c0 = faults(), time.process_time()
                        await run(calls[name], size[name], conc)
                        cell["cpu_us"][name].append((time.process_time() - c0) / size[name] * 1e6)
                        cell["faults"][name].append((faults() - f0) / size[name])
                out[str(conc)] = cell | {"block": size}
        return out

    return asyncio.run(main())


def ratio(over: list[float], under: list[float]) -> Result:
    """Quartiles of the per-round ratios of two clients' blocks."""
    q1, median, q3 = quartiles([o / u for o, u in zip(over, under, strict=True)])
    return {"median": median, "q1": q1, "q3": q3}


def cpu(
    servers: Servers, *, rounds: int, block: int, concurrency: tuple[int, ...] = (1, 64)
) -> Result:
    """The CPU section: one child times every client against nginx (or the fallback)."""
    optional = {"httpx": "httpx", "sdk_no_span": "opentelemetry"}
    clients = [n for n in CLIENTS if n not in optional or importlib.util.find_spec(optional[n])]
    url, server = servers.nginx, "nginx"
    if url is None:
        url, server = servers.standin.url, "the aiohttp.web stand-in (nginx is not installed)"
        servers.standin.reset(None)
    log(f"cpu: {', '.join(clients)} against {server}, {rounds} rounds of {block} calls")
    job = {"url": url, "clients": clients, "rounds": rounds, "block": block}
    raw = child("cpu.measure", job | {"concurrencies": list(concurrency)})
    out: Result = {"server": server, "rounds": rounds, "target": TARGET, "by_concurrency": {}}
    out["malloc"] = raw.pop("malloc")  # as the measuring child saw it
    for conc, cell in raw.items():
        row: Result = {"samples": cell}
        for name in clients:
            q1, median, q3 = quartiles(cell["cpu_us"][name])
            faults = quartiles(cell["faults"][name])[1]
            row[name] = {"cpu_us_per_call": median, "q1": q1, "q3": q3, "faults_per_call": faults}
        sdk = cell["cpu_us"]["sdk"]
        row["sdk_over_aiohttp"] = ratio(sdk, cell["cpu_us"]["aiohttp"])
        row["sdk_over_aiohttp"]["met"] = row["sdk_over_aiohttp"]["median"] <= TARGET
        if "sdk_no_span" in clients:
            row["span_cost"] = ratio(sdk, cell["cpu_us"]["sdk_no_span"])
        out["by_concurrency"][conc] = row
    return out


def cpu_report(out: Result) -> list[str]:
    """The CPU section as text lines."""
    rows, ratios = [], []
    for conc, row in out["by_concurrency"].items():
        for name in (n for n in CLIENTS if n in row):
            c = row[name]
            us, spread = f"{c['cpu_us_per_call']:.1f}", f"{c['q1']:.1f}-{c['q3']:.1f}"
            rows.append([TITLES[name], conc, us, spread, f"{c['faults_per_call']:.2f}"])
        r = row["sdk_over_aiohttp"]
        met = "met" if r["met"] else "NOT MET"
        ratios.append(
            f"  reserve() / raw aiohttp, CPU per call, conc {conc}: {r['median']:.2f} (q1-q3 of "
            f"block pairs {r['q1']:.2f}-{r['q3']:.2f}), target <= {out['target']:.2f}: {met}"
        )
        if "span_cost" in row:
            r = row["span_cost"]
            ratios.append(
                f"  reserve() / reserve() without its span wrapper (no OpenTelemetry provider), "
                f"conc {conc}: {r['median']:.3f} (q1-q3 {r['q1']:.3f}-{r['q3']:.3f})"
            )
    pinned = "pinned" if out["malloc"] == PINNED_MALLOC else "NOT PINNED"
    return [
        f"CPU per call, side by side in one process against {out['server']}: {out['rounds']} "
        f"rounds of alternating blocks, malloc {pinned}, medians",
        *table(["client", "conc", "CPU us/call", "q1-q3", "faults/call"], rows),
        *ratios,
    ]
