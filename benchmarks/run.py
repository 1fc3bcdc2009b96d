"""The SDK beside raw aiohttp, httpx and requests, in one run: speed, CPU, import, memory.

Run from the repository root (Python 3.10+, the package installed; httpx and requests
are optional — a client whose library is missing is reported as "not installed")::

    python -m benchmarks.run                 # full: 10 to 14 minutes on 2 cores
    python -m benchmarks.run --quick         # smoke run for the tests: ~20 s, numbers meaningless
    python -m benchmarks.run --out PATH      # JSON results (default benchmarks/results.json)
    python -m benchmarks.profile sdk --concurrency 64   # where one client's CPU goes

What it measures
----------------
* One canned-response HTTP/1.1 keep-alive server (:mod:`benchmarks.server`, plain
  ``asyncio.Protocol``) in its own process on 127.0.0.1, shared by every client of the
  run. It answers the documented 201 reserve body. It is not the bottleneck: it reports
  its own CPU, and the table prints its busiest share of a core over any timed run
  (about 10-30 % on a 2-core machine, while the client uses ~100 % of the other core).
* The same reserve call through (a) ``TwoChatSession.reserve()``, (b) raw aiohttp
  (``session.post(url, json=..., headers=...)``, ``await resp.json()``, fields and
  ``datetime.fromisoformat`` by hand into a slotted dataclass), (c) ``httpx.AsyncClient``
  (pool matched to aiohttp's: 100 connections, all kept alive), (d) ``requests.Session``
  in a loop; at concurrency 64 requests runs in 64 threads, one ``Session`` each
  (:mod:`benchmarks.clients`). The SDK runs twice more, with retries and a rate limit
  off, and configured but never triggered (``max_retries=2, rate_limit=10**9``).
* The SDK and raw aiohttp again against nginx, a native-speed server, when
  it is installed (:mod:`benchmarks.nginx`; "not installed" in the table otherwise).
* Per client and concurrency (1 and 64): calls/s (wall), client CPU microseconds per
  call (``time.process_time()`` of the client process / N) and minor page faults per
  call, each in a fresh process after a warm-up, repeated 5 times with the clients
  interleaved (order rotated every repetition) so machine noise hits all of them alike;
  the SDK variants and raw aiohttp get 15 repetitions (5 against nginx). Medians are
  reported; ratios are the median of the per-repetition ratios (paired, same
  repetition), shown with the quartiles of those pairs, which say how far one run can be
  trusted (:mod:`benchmarks.measure`).
* The SDK / raw aiohttp ratios that the targets hold to 1.00 (CPU) and 0.97 (calls/s)
  are measured closer: both clients in one process, timed in alternating blocks of 200
  calls (ABBA, 16 rounds), in 7 fresh processes per concurrency and server; each
  process's median block-pair ratio, then the median over processes with their
  quartiles (:func:`benchmarks.measure.interleaved`). Pairs a few hundred milliseconds
  apart cancel the host's slow spells that separate processes, seconds apart, do not;
  the separate processes' own ratios are kept in the results as ``separate_ratios``.
* Every process runs with glibc malloc's thresholds pinned
  (:data:`benchmarks.measure.PINNED_MALLOC`): left free, they decide per process whether
  each socket read maps fresh memory, which would swing CPU per call by tens of µs.
* Scaling of the SDK: CPU/call at N = 1,000 / 10,000 / 100,000 (concurrency 64) and at
  concurrency 1 / 16 / 64 / 256 / 1,024 (N = 5,000); largest / smallest. Raw aiohttp
  runs the concurrency axis too, since part of the growth there is aiohttp's own.
* Import: cumulative microseconds of ``import twochat_async`` and of ``from
  twochat_async import TwoChatSession`` (what a user's first import costs) against
  ``import aiohttp, attrs, cattrs``; median of fresh interpreters, bytecode cached alike
  for both (:mod:`benchmarks.imports`).
* Memory per call in flight (peak RSS, ``VmHWM``, fresh processes, 3 repetitions): 10,000
  calls at once (one ``asyncio.gather``) against the server's slow path, which answers
  after 2 s, SDK beside raw aiohttp.
* The budget: 200 SDK calls at once with ``rate_limit=600`` against the server's
  sliding-window path, which counts requests as 2Chat does (more than 10 in the last
  second get 429 with ``Retry-After: 1``; every request counts): requests counted, 429s.
  Then the same 200 calls split across 4 processes (50 each, launched together, each
  waiting for a common start time so that their imports do not stagger them), each
  session's ``rate_limit`` a ``RedisRateLimit(per_minute=600)`` in one private
  ``redis-server`` (:mod:`benchmarks.redis_server`; "not measured" when it is not
  installed): requests counted by the server around all 4, 429s, calls ok and failed,
  wall time.

The table then checks each ratio against its target (:mod:`benchmarks.report`).

Only ratios within one run mean anything: the machine is shared and noisy. Even paired,
one run's CPU ratios have quartiles some 10-20 % apart on a busy 2-core machine, so a
few-percent difference between the SDK and raw aiohttp is beyond one run's resolution:
look at the quartiles, repeat the run, and use :mod:`benchmarks.profile` to see the
SDK's own share. The tests run ``--quick`` and check the output's shape, never its
numbers.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.metadata
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from benchmarks import measure, report
from benchmarks.imports import import_time
from benchmarks.measure import PINNED_MALLOC, ROOT, log
from benchmarks.nginx import running_nginx
from benchmarks.redis_server import running_redis
from benchmarks.server import SLOW_PREFIX, WINDOW_PREFIX, running_server

DEFAULT_OUT = ROOT / "benchmarks" / "results.json"


@dataclass(frozen=True, kw_only=True)
class Mode:
    """How much work one run of the benchmark does."""

    name: str
    #: Calls per timed run of the client comparison.
    n: int
    #: Repetitions of the comparison for every client.
    reps: int
    #: Repetitions for the SDK variants and raw aiohttp, whose ratios have tight targets.
    pair_reps: int
    #: N of the scaling table's first axis (at concurrency 64).
    scaling_n: tuple[int, ...]
    #: Concurrencies of the scaling table's second axis, each with N = ``scaling_fixed_n``.
    scaling_concurrency: tuple[int, ...]
    scaling_fixed_n: int
    scaling_reps: int
    #: Fresh interpreters per import statement.
    import_runs: int
    #: Calls in flight at once in the peak-RSS runs, and repetitions of them.
    rss_in_flight: int
    rss_reps: int
    #: Calls at once against the sliding-window stand-in (at ``rate_limit=600``), in one
    #: process, then split across 4 sharing a ``RedisRateLimit``.
    budget_calls: int
    #: Repetitions of the comparison against nginx.
    nginx_reps: int
    #: The SDK and raw aiohttp side by side in one process, against each server: the
    #: ratios their targets are held to.
    pairs: measure.Interleaving
    #: One process per client for all its runs, instead of one per run (fewer interpreters).
    batch: bool


FULL = Mode(
    name="full",
    n=2_000,
    reps=5,
    pair_reps=15,
    scaling_n=(1_000, 10_000, 100_000),
    scaling_concurrency=(1, 16, 64, 256, 1_024),
    scaling_fixed_n=5_000,
    scaling_reps=3,
    import_runs=9,
    rss_in_flight=10_000,
    rss_reps=3,
    budget_calls=200,
    nginx_reps=5,
    pairs=measure.Interleaving(processes=7, rounds=16, block=200),
    batch=False,
)
#: Every section at tiny sizes: proves the harness works, in about 20 s.
QUICK = Mode(
    name="quick",
    n=200,
    reps=1,
    pair_reps=1,
    scaling_n=(100, 200, 400),
    scaling_concurrency=(1, 16, 64, 256, 1_024),
    scaling_fixed_n=200,
    scaling_reps=1,
    import_runs=2,
    rss_in_flight=500,
    rss_reps=1,
    budget_calls=20,
    nginx_reps=1,
    pairs=measure.Interleaving(processes=1, rounds=2, block=20),
    batch=True,
)


def benchmark(mode: Mode) -> dict[str, Any]:
    """Run every measurement of ``mode``; return the results without ``meta``."""
    results: dict[str, Any] = {}
    with running_server(env=measure.child_env()) as (url, _):
        comparison, results["resilience"] = measure.compare_clients(
            url,
            n=mode.n,
            reps=mode.reps,
            pair_reps=mode.pair_reps,
            pairs=mode.pairs,
            batch=mode.batch,
        )
        results |= comparison
        results["scaling"] = measure.scaling(
            url,
            by_n=mode.scaling_n,
            by_concurrency=mode.scaling_concurrency,
            fixed_n=mode.scaling_fixed_n,
            reps=mode.scaling_reps,
            batch=mode.batch,
        )
        results["rss"] = measure.peak_rss(
            url + SLOW_PREFIX.decode(), in_flight=mode.rss_in_flight, reps=mode.rss_reps
        )
        with running_redis() as redis_url:
            results["budget"] = measure.budget(
                url + WINDOW_PREFIX.decode(), calls=mode.budget_calls, redis_url=redis_url
            )
    with running_nginx() as nginx_url:
        results["nginx"] = measure.against_nginx(
            nginx_url, n=mode.n, reps=mode.nginx_reps, pairs=mode.pairs, batch=mode.batch
        )
    results["import_time"] = import_time(runs=mode.import_runs)
    return results


def git_state() -> dict[str, Any]:
    """The commit measured, and whether the library had uncommitted changes."""

    def git(*args: str) -> str | None:
        try:
            proc = subprocess.run(  # noqa: S603 - fixed arguments
                ["git", *args],  # noqa: S607 - git from PATH, as a developer runs it
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=10,
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return proc.stdout.strip() if proc.returncode == 0 else None

    status = git("status", "--porcelain", "--", "twochat_async")
    return {"commit": git("rev-parse", "--short", "HEAD"), "library_dirty": bool(status)}


def versions() -> dict[str, str | None]:
    """Versions of everything measured (``None``: not installed)."""
    found: dict[str, str | None] = {}
    for dist in (
        "twochat-async",
        "aiohttp",
        "attrs",
        "cattrs",
        "httpx",
        "httpcore",
        "requests",
    ):
        try:
            found[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            found[dist] = None
    return found


def loadavg() -> str:
    """The machine's load averages over 1, 5 and 15 minutes, or ``n/a``."""
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print the table, write the JSON; exit 1 if a measurement failed."""
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.run", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--quick", action="store_true", help="tiny sizes, to prove it works")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON results path")
    parser.add_argument("--reps", type=int, help="repetitions of the client comparison")
    parser.add_argument("-n", type=int, help="calls per run of the client comparison")
    args = parser.parse_args(argv)
    mode = QUICK if args.quick else FULL
    mode = dataclasses.replace(mode, reps=args.reps or mode.reps, n=args.n or mode.n)

    started = time.perf_counter()
    meta: dict[str, Any] = {
        "mode": mode.name,
        "n": mode.n,
        "reps": mode.reps,
        "pair_reps": mode.pair_reps,
        "scaling_reps": mode.scaling_reps,
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "loadavg_start": loadavg(),
        "versions": versions(),
        "git": git_state(),
        "malloc": PINNED_MALLOC,
        "command": shlex.join(["python", "-m", "benchmarks.run", *argv]),
    }
    results = {"meta": meta, **benchmark(mode)}
    meta["loadavg_end"] = loadavg()
    meta["seconds"] = round(time.perf_counter() - started, 1)
    results["server"] = report.server_summary(results)
    results["targets"] = report.targets(results)

    print(report.render(results))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    log(f"wrote {args.out} in {meta['seconds']} s")
    errors = report.failed(results)
    for error in errors:
        log(f"FAILED: {error}")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
