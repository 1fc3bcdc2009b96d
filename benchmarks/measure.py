"""The timed measurements: worker processes, their samples, and the medians and ratios.

Every timed run happens in a worker process (``python -m benchmarks.clients``, see
:mod:`benchmarks.clients`) started with :func:`child_env`. This module decides which runs
to make and in which order, and condenses their samples; :mod:`benchmarks.report` turns
the result into the table.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.clients import REQUIRES
from benchmarks.server import fetch_stats

ROOT = Path(__file__).resolve().parent.parent

#: glibc malloc settings given to every process the benchmark starts. asyncio reads a
#: socket into a fresh 256 KiB buffer and shrinks it to what arrived. Left to glibc,
#: whether that buffer comes from the heap or from its own ``mmap`` depends on what the
#: process freed while importing; in the second case every read costs mmap + mremap +
#: munmap and two minor page faults, tens of microseconds per call, so two clients could
#: differ by their imports rather than their code. A fixed mmap threshold above 256 KiB
#: keeps the buffer on the heap, and a trim threshold above it stops glibc from handing
#: the top of the heap back after every read. ``minor_faults`` in every sample shows it.
PINNED_MALLOC = {
    "MALLOC_MMAP_THRESHOLD_": str(1024 * 1024),
    "MALLOC_TRIM_THRESHOLD_": str(2 * 1024 * 1024),
}

#: The concurrencies of the client comparison.
CONCURRENCY = (1, 64)
CPU, CALLS = "cpu_us_per_call", "calls_per_s"


@dataclass(frozen=True)
class Variant:
    """One row of the client comparison: a client of :mod:`benchmarks.clients`, configured."""

    key: str  # its key in the JSON results
    client: str  # a key of benchmarks.clients.ASYNC_CLIENTS or SYNC_CLIENTS
    title: str  # its name in the table
    options: dict[str, Any] = field(default_factory=dict)  # TwoChatSession keywords
    paired: bool = False  # in a ratio with a tight target: timed pair_reps times, not reps


#: "Configured but never triggered": the default retry count, and a budget of requests
#: per minute that no run can reach.
RESILIENCE_ON = {"max_retries": 2, "rate_limit": 10**9}
RESILIENCE_OFF = {"max_retries": 0, "rate_limit": None}

VARIANTS = (
    Variant("sdk", "sdk", "twochat_async reserve()", paired=True),
    Variant("aiohttp", "aiohttp", "raw aiohttp", paired=True),
    Variant("httpx", "httpx", "httpx.AsyncClient"),
    Variant("requests", "requests", "requests.Session"),
    Variant("sdk-off", "sdk", "SDK, retries+limit off", RESILIENCE_OFF, paired=True),
    Variant("sdk-on", "sdk", "SDK, retries+limit on", RESILIENCE_ON, paired=True),
)
TITLES = {variant.key: variant.title for variant in VARIANTS}

#: The ratios of the comparison: name -> (numerator row, denominator row, concurrency,
#: sample key). Each is the median of per-repetition ratios (see :func:`paired_ratio`).
RATIOS = {
    "sdk_over_aiohttp_cpu_c1": ("sdk", "aiohttp", 1, CPU),
    "sdk_over_aiohttp_cpu_c64": ("sdk", "aiohttp", 64, CPU),
    "sdk_over_aiohttp_calls_c1": ("sdk", "aiohttp", 1, CALLS),
    "sdk_over_aiohttp_calls_c64": ("sdk", "aiohttp", 64, CALLS),
    "sdk_over_httpx_calls_c64": ("sdk", "httpx", 64, CALLS),
}
#: The comparison against nginx: the SDK and raw aiohttp.
NGINX_VARIANTS = tuple(v for v in VARIANTS if v.key in ("sdk", "aiohttp"))
NGINX_RATIOS = {
    f"nginx_{name}": ratio for name, ratio in RATIOS.items() if "_cpu_" in name or "calls" in name
}
NGINX_RATIOS.pop("nginx_sdk_over_httpx_calls_c64")
RESILIENCE_RATIOS = {
    f"resilience_on_over_off_cpu_c{k}": ("sdk-on", "sdk-off", k, CPU) for k in CONCURRENCY
}

#: A run for a worker (see :func:`run_job`) and what the worker measured in it.
Job = dict[str, Any]
Sample = dict[str, Any]


def log(message: str) -> None:
    """Write progress to stderr; stdout holds only the table."""
    print(message, file=sys.stderr, flush=True)


def child_env() -> dict[str, str]:
    """The environment of every process the benchmark starts: ours, malloc pinned."""
    return os.environ | PINNED_MALLOC


def available(client: str) -> bool:
    """Whether the library ``client`` needs is installed."""
    return importlib.util.find_spec(REQUIRES[client]) is not None


def run_job(
    client: str,
    base_url: str,
    n: int,
    concurrency: int,
    *,
    options: dict[str, Any] | None = None,
    kind: str = "time",
    warmup: int | None = None,
) -> Job:
    """One run for a worker (see :func:`benchmarks.clients.main`).

    ``kind`` is ``"time"`` (``n`` timed calls, at most ``concurrency`` in flight) or
    ``"rss"`` (``n`` calls in flight at once). The warm-up before the clock starts opens
    every pooled connection and builds every lazy cache.
    """
    if warmup is None:
        warmup = min(max(50, 2 * concurrency), max(50, n))
    return {
        "kind": kind,
        "client": client,
        "base_url": base_url,
        "n": n,
        "concurrency": concurrency,
        "warmup": warmup,
        "options": options or {},
    }


def start_worker(jobs: list[Job], *, stdin: bool = False) -> subprocess.Popen[str]:
    """Start a fresh interpreter running ``jobs`` (see :func:`finish_worker`).

    ``stdin``: give it a pipe to write to (a budget run's start time), not our own.
    """
    return subprocess.Popen(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-m", "benchmarks.clients", json.dumps({"runs": jobs})],
        cwd=ROOT,
        env=child_env(),
        stdin=subprocess.PIPE if stdin else None,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish_worker(proc: subprocess.Popen[str], jobs: list[Job]) -> list[Sample]:
    """Wait for the worker running ``jobs``; a job that failed comes back as ``error``."""
    try:
        stdout, stderr = proc.communicate(timeout=1800)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        return [{"error": "worker timed out after 1800 s"} for _ in jobs]
    if proc.returncode != 0:
        lines = stderr.strip().splitlines() or [f"exit status {proc.returncode}"]
        return [{"error": lines[-1]} for _ in jobs]
    results: list[Sample] = json.loads(stdout.strip().splitlines()[-1])
    return results


def run_worker(jobs: list[Job]) -> list[Sample]:
    """Run ``jobs`` in one fresh interpreter; a job that failed comes back as ``error``."""
    return finish_worker(start_worker(jobs), jobs)


def run_jobs(jobs: list[Job], *, batch: bool) -> list[Sample]:
    """Run every job in a fresh process of its own, or one process per client if ``batch``.

    A process per job means no two runs share a heap, a cache or the garbage collector's
    state; ``batch`` starts fewer interpreters, for the smoke run.
    """
    if not batch:
        results = []
        for index, job in enumerate(jobs, 1):
            log(f"  [{index}/{len(jobs)}] {job['client']} c={job['concurrency']} n={job['n']}")
            results.extend(run_worker([job]))
        return results
    by_client: dict[str, list[int]] = {}
    for index, job in enumerate(jobs):
        by_client.setdefault(job["client"], []).append(index)
    merged: list[Sample] = [{} for _ in jobs]
    for client, indexes in by_client.items():
        log(f"  {client}: {len(indexes)} runs in one process")
        for index, result in zip(indexes, run_worker([jobs[i] for i in indexes]), strict=True):
            merged[index] = result
    return merged


def summarize(samples: list[Sample]) -> dict[str, Any]:
    """Medians of one cell's samples (one per repetition), with the spread of CPU/call."""
    errors = [s["error"] for s in samples if "error" in s]
    if errors:
        return {"status": "error", "error": errors[0]}
    cpu = [s[CPU] for s in samples]
    return {
        "status": "ok",
        CALLS: statistics.median(s[CALLS] for s in samples),
        CPU: statistics.median(cpu),
        "cpu_spread": (max(cpu) - min(cpu)) / statistics.median(cpu),
        "client_busy": statistics.median(s["cpu_s"] / s["wall_s"] for s in samples),
        "minor_faults_per_call": statistics.median(s["minor_faults_per_call"] for s in samples),
        "server_busy_max": max(s["server_busy"] for s in samples),
        "server_us_per_request": statistics.median(
            s["server_cpu_s"] / max(1, s["server_requests"]) * 1e6 for s in samples
        ),
        "samples": samples,
    }


def paired_ratio(a: list[Sample], b: list[Sample], key: str) -> tuple[float, float, float] | None:
    """``(median, q1, q3)`` over repetitions of ``a[i][key] / b[i][key]``, or ``None``.

    Sample ``i`` of both lists comes from repetition ``i``, timed minutes apart at most:
    pairing them cancels most of the machine's drift. ``None`` if any pair lacks ``key``
    (a failed run).
    """
    pairs = list(zip(a, b, strict=False))
    ratios = [x[key] / y[key] for x, y in pairs if key in x and key in y]
    if not ratios or len(ratios) != len(pairs):
        return None
    if len(ratios) == 1:
        return ratios[0], ratios[0], ratios[0]
    q1, median, q3 = statistics.quantiles(ratios, n=4, method="inclusive")
    return median, q1, q3


def rotated(items: Sequence[Any], by: int) -> list[Any]:
    """``items`` starting at position ``by``, so that no client is always timed first."""
    by %= len(items)
    return [*items[by:], *items[:by]]


def timed_comparison(
    url: str,
    variants: Sequence[Variant],
    ratio_defs: dict[str, tuple[str, str, int, str]],
    *,
    n: int,
    reps: int,
    pair_reps: int,
    batch: bool,
) -> tuple[dict[str, Any], dict[str, float | None], dict[str, list[float] | None]]:
    """Time ``variants`` at each concurrency; return the table, the ratios and their quartiles.

    Each repetition runs every installed variant at both concurrencies, in an order
    rotated by one per repetition, so that the machine's slow spells hit them all alike.
    After ``reps`` repetitions the ``paired`` variants alone go on up to ``pair_reps``:
    their ratios are held to limits only a few percent wide.
    """
    installed = [v for v in variants if available(v.client)]
    samples: dict[tuple[str, int], list[Sample]] = {
        (v.key, k): [] for v in installed for k in CONCURRENCY
    }
    total = max(reps, pair_reps)
    for rep in range(total):
        log(f"clients: repetition {rep + 1}/{total}")
        timed = installed if rep < reps else [v for v in installed if v.paired]
        order = [(v, k) for k in CONCURRENCY for v in rotated(timed, rep)]
        jobs = [run_job(v.client, url, n, k, options=v.options) for v, k in order]
        for (variant, k), result in zip(order, run_jobs(jobs, batch=batch), strict=True):
            samples[variant.key, k].append(result)

    table: dict[str, Any] = {}
    for variant in variants:
        table[variant.key] = {}
        for k in CONCURRENCY:
            runs = samples.get((variant.key, k))
            cell = {"status": "not installed"} if runs is None else summarize(runs)
            if variant.client == "requests":
                cell["how"] = "loop" if k == 1 else f"{k} threads, one Session each"
            table[variant.key][f"c{k}"] = cell

    ratios: dict[str, float | None] = {}
    quartiles: dict[str, list[float] | None] = {}
    for name, (a, b, k, key) in ratio_defs.items():
        ratio = None
        if (a, k) in samples and (b, k) in samples:
            ratio = paired_ratio(samples[a, k], samples[b, k], key)
        ratios[name] = None if ratio is None else ratio[0]
        quartiles[name] = None if ratio is None else [ratio[1], ratio[2]]
    return table, ratios, quartiles


@dataclass(frozen=True, kw_only=True)
class Interleaving:
    """How the SDK and raw aiohttp are timed side by side in one process (see `interleaved`)."""

    processes: int  # fresh processes per concurrency
    rounds: int  # rounds per process, each one block of each client
    block: int  # calls per block


def interleaved(
    url: str, how: Interleaving, *, prefix: str = "", batch: bool
) -> tuple[dict[str, float | None], dict[str, list[float] | None], dict[str, Any]]:
    """The SDK / raw aiohttp ratios of CPU per call and calls/s, timed in one process.

    Each of ``how.processes`` fresh processes per concurrency holds both clients and times
    them in alternating blocks (:func:`benchmarks.clients.measure_pair`): pairs a few
    hundred milliseconds apart, where separate processes are seconds apart, so the host's
    slow spells fall on both alike. A process's ratio is the median over its rounds; the
    ratio is the median over processes, with their quartiles. Both clients share one heap
    (malloc pinned as everywhere) and one garbage collector.
    """
    names = ("sdk", "aiohttp")
    order = [(rep, k) for rep in range(how.processes) for k in CONCURRENCY]
    jobs = [
        run_job("+".join(names), url, how.block, k, kind="pair")
        | {"clients": rotated(names, rep), "rounds": how.rounds}
        for rep, k in order
    ]
    found: dict[str, list[float]] = {}
    failed: set[str] = set()
    for (_, k), result in zip(order, run_jobs(jobs, batch=batch), strict=True):
        for key, kind in ((CPU, "cpu"), (CALLS, "calls")):
            name = f"{prefix}sdk_over_aiohttp_{kind}_c{k}"
            if "error" in result:
                failed.add(name)
                continue
            sdk, raw = result[key]["sdk"], result[key]["aiohttp"]
            found.setdefault(name, []).append(
                statistics.median(a / b for a, b in zip(sdk, raw, strict=True))
            )
    ratios: dict[str, float | None] = {}
    quartiles: dict[str, list[float] | None] = {}
    for name, values in found.items():
        if name in failed:
            ratios[name] = quartiles[name] = None
            continue
        ratios[name] = statistics.median(values)
        q = statistics.quantiles(values, n=4, method="inclusive") if len(values) > 1 else values
        quartiles[name] = [q[0], q[-1]]
    for name in failed - set(found):
        ratios[name] = quartiles[name] = None
    how_ = {
        "processes": how.processes,
        "rounds": how.rounds,
        "block": how.block,
        "per_process": found,
    }
    return ratios, quartiles, how_


def compare_clients(
    url: str, *, n: int, reps: int, pair_reps: int, pairs: Interleaving, batch: bool
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Time every variant against our server; return the comparison and the resilience part.

    The SDK / raw aiohttp ratios are those of `interleaved`; the separate processes' own
    are kept as ``separate_ratios``.
    """
    table, ratios, quartiles = timed_comparison(
        url, VARIANTS, RATIOS | RESILIENCE_RATIOS, n=n, reps=reps, pair_reps=pair_reps, batch=batch
    )
    log("clients: the SDK and raw aiohttp in one process, in alternating blocks")
    side_ratios, side_quartiles, how = interleaved(url, pairs, batch=batch)
    separate = {name: ratios[name] for name in side_ratios}
    ratios |= side_ratios
    quartiles |= side_quartiles
    comparison = {
        "clients": table,
        "ratios": {name: ratios[name] for name in RATIOS},
        "ratio_quartiles": quartiles,
        "separate_ratios": separate,
        "interleaving": how,
    }
    resilience: dict[str, Any] = {"on": RESILIENCE_ON, "off": RESILIENCE_OFF}
    for name in RESILIENCE_RATIOS:
        resilience[name.removeprefix("resilience_")] = ratios[name]
    return comparison, resilience


def against_nginx(
    url: str | None, *, n: int, reps: int, pairs: Interleaving, batch: bool
) -> dict[str, Any]:
    """The SDK and raw aiohttp against nginx at ``url``; ratios as in `compare_clients`."""
    if url is None:
        return {
            "status": "not installed",
            "ratios": dict.fromkeys(NGINX_RATIOS),
            "ratio_quartiles": dict.fromkeys(NGINX_RATIOS),
        }
    log("nginx:")
    table, ratios, quartiles = timed_comparison(
        url, NGINX_VARIANTS, NGINX_RATIOS, n=n, reps=reps, pair_reps=reps, batch=batch
    )
    log("nginx: the SDK and raw aiohttp in one process, in alternating blocks")
    side_ratios, side_quartiles, how = interleaved(url, pairs, prefix="nginx_", batch=batch)
    return {
        "status": "ok",
        "clients": table,
        "ratios": ratios | side_ratios,
        "ratio_quartiles": quartiles | side_quartiles,
        "separate_ratios": {name: ratios[name] for name in side_ratios},
        "interleaving": how,
    }


def scaling(
    url: str,
    *,
    by_n: Sequence[int],
    by_concurrency: Sequence[int],
    fixed_n: int,
    reps: int,
    batch: bool,
) -> dict[str, Any]:
    """CPU per call of the SDK as N grows (at concurrency 64) and as concurrency grows.

    Raw aiohttp runs the concurrency axis too: at concurrency 1 every call pays an event
    loop iteration of its own, and past the pool's 100 connections aiohttp queues the
    rest; the SDK / aiohttp column shows how much of the growth is the SDK's own.
    """
    sdk_by_n = [("sdk", size, 64) for size in by_n]
    sdk_by_conc = [("sdk", fixed_n, k) for k in by_concurrency]
    raw_by_conc = [("aiohttp", fixed_n, k) for k in by_concurrency]
    cells = list(dict.fromkeys(sdk_by_n + sdk_by_conc + raw_by_conc))
    samples: dict[tuple[str, int, int], list[Sample]] = {cell: [] for cell in cells}
    for rep in range(reps):
        log(f"scaling: repetition {rep + 1}/{reps}")
        order = rotated(cells, rep)
        jobs = [run_job(client, url, size, k) for client, size, k in order]
        for cell, result in zip(order, run_jobs(jobs, batch=batch), strict=True):
            samples[cell].append(result)
    summary = {cell: summarize(samples[cell]) for cell in cells}

    def largest_over_smallest(keys: list[tuple[str, int, int]]) -> float | None:
        values = [summary[key][CPU] for key in keys if summary[key]["status"] == "ok"]
        return max(values) / min(values) if values and len(values) == len(keys) else None

    over_raw = {}
    for sdk, raw in zip(sdk_by_conc, raw_by_conc, strict=True):
        found = paired_ratio(samples[sdk], samples[raw], CPU)
        over_raw[str(sdk[2])] = None if found is None else found[0]
    return {
        "by_n": {str(cell[1]): summary[cell] for cell in sdk_by_n},
        "by_concurrency": {str(cell[2]): summary[cell] for cell in sdk_by_conc},
        "aiohttp_by_concurrency": {str(cell[2]): summary[cell] for cell in raw_by_conc},
        "sdk_over_aiohttp_by_concurrency": over_raw,
        "fixed_n": fixed_n,
        "concurrency_for_n": 64,
        "max_over_min_by_n": largest_over_smallest(sdk_by_n),
        "max_over_min_by_concurrency": largest_over_smallest(sdk_by_conc),
        "aiohttp_max_over_min_by_concurrency": largest_over_smallest(raw_by_conc),
        "max_over_min": largest_over_smallest(list(dict.fromkeys(sdk_by_n + sdk_by_conc))),
    }


def peak_rss(url: str, *, in_flight: int, reps: int) -> dict[str, Any]:
    """Memory per call with ``in_flight`` calls awaiting at once: SDK beside raw aiohttp.

    ``url`` is the server's slow base path (answers after 2 s). Each repetition runs both
    clients in fresh processes, in rotated order; the ratio is the median of the pairs.
    """
    result: dict[str, Any] = {"in_flight": in_flight}
    samples: dict[str, list[Sample]] = {"sdk": [], "aiohttp": []}
    for rep in range(reps):
        for client in rotated(list(samples), rep):
            log(f"rss: {client} with {in_flight} calls in flight ({rep + 1}/{reps})")
            job = run_job(client, url, in_flight, in_flight, kind="rss", warmup=100)
            (out,) = run_worker([job])
            samples[client].append(out)
    for client, runs in samples.items():
        errors = [s["error"] for s in runs if "error" in s]
        if errors:
            result[client] = {"status": "error", "error": errors[0]}
            continue
        result[client] = {
            "status": "ok",
            **{
                key: statistics.median(s[key] for s in runs)
                for key in ("setup_mib", "peak_mib", "kib_per_call")
            },
            "samples": runs,
        }
    ratio = paired_ratio(samples["sdk"], samples["aiohttp"], "kib_per_call")
    result["kib_per_call_ratio"] = None if ratio is None else ratio[0]
    result["kib_per_call_ratio_q1_q3"] = None if ratio is None else [ratio[1], ratio[2]]
    return result


#: The sliding-window run: calls at once, and the SDK's options.
BUDGET_OPTIONS = {"rate_limit": 600}
#: The shared run: the same calls split across this many processes, one budget in Redis.
SHARED_PROCESSES = 4
#: Its key in the budget's results.
SHARED_KEY = f"shared_{SHARED_PROCESSES}_processes"
#: How long after the last of them is ready the shared run's processes start calling.
SHARED_START_SECONDS = 0.2


def budget(url: str, *, calls: int, redis_url: str | None) -> dict[str, Any]:
    """What ``calls`` SDK calls at ``rate_limit=600`` cost against 2Chat's sliding window.

    ``url`` is the server's sliding-window base path: more than 10 requests in the last
    second are answered 429 with ``Retry-After: 1``, and every request counts. The calls
    run in one process, then split across :data:`SHARED_PROCESSES` sharing one
    ``RedisRateLimit`` in the redis-server at ``redis_url`` (see :func:`shared_budget`).
    """
    log(f"budget: {calls} calls at {BUDGET_OPTIONS}")
    job = run_job("sdk", url, calls, calls, kind="budget", options=BUDGET_OPTIONS, warmup=0)
    (out,) = run_worker([job])
    return {
        "options": BUDGET_OPTIONS,
        "status": "error" if "error" in out else "ok",
        **out,
        SHARED_KEY: shared_budget(url, calls=calls, redis_url=redis_url),
    }


def shared_budget(url: str, *, calls: int, redis_url: str | None) -> dict[str, Any]:
    """The budget's ``calls`` from :data:`SHARED_PROCESSES` processes sharing one budget.

    Every process gets an equal share of the calls and a session whose ``rate_limit`` is
    ``RedisRateLimit(redis_url, per_minute=600)``. They are launched at once; each says
    when it has imported everything, and once all have, each is given the same wall-clock
    time to start calling at (:data:`SHARED_START_SECONDS` ahead): on a busy machine four
    interpreters starting together take seconds, unevenly. The requests counted and the
    429s are the server's, read here before the first process is launched and after the
    last one ended; calls ok and failed are the processes' sums; wall is from the first
    process's start of calling to the last one's end.
    """
    processes = SHARED_PROCESSES
    result: dict[str, Any] = {"processes": processes, "calls": calls, "redis_url": redis_url}
    if redis_url is None:
        return result | {"status": "not installed", "missing": "redis-server"}
    if importlib.util.find_spec("redis") is None:
        return result | {"status": "not installed", "missing": "redis (the Python package)"}
    shares = [calls // processes + (i < calls % processes) for i in range(processes)]
    log(f"budget: {calls} calls from {processes} processes sharing a RedisRateLimit")
    stats_url = url.rsplit("/", 1)[0]
    before = fetch_stats(stats_url)
    jobs = [
        run_job("sdk", url, share, share, kind="budget", options=BUDGET_OPTIONS, warmup=0)
        | {"redis_url": redis_url, "start": "stdin"}
        for share in shares
    ]
    procs = [start_worker([job], stdin=True) for job in jobs]
    for proc in procs:
        # A worker writes nothing more until it has its start time, so this reads exactly
        # its "ready" line and communicate() (reading the pipe itself) misses nothing.
        # One that failed ends its output instead: finish_worker reports its error.
        assert proc.stdout is not None
        proc.stdout.readline()
    start_at = time.time() + SHARED_START_SECONDS
    for proc in procs:
        assert proc.stdin is not None
        with contextlib.suppress(OSError):  # a worker that failed has closed its end
            proc.stdin.write(f"{start_at!r}\n")
            proc.stdin.flush()  # communicate() closes it
    workers = [finish_worker(proc, [job])[0] for proc, job in zip(procs, jobs, strict=True)]
    after = fetch_stats(stats_url)
    result["workers"] = workers
    errors = [w["error"] for w in workers if "error" in w]
    if errors:
        return result | {"status": "error", "error": errors[0]}
    began = [w["began_at"] for w in workers]
    failures = [w["failure"] for w in workers if w["failure"]]
    warnings = [w["first_warning"] for w in workers if w["first_warning"]]
    return result | {
        "status": "ok",
        "options": BUDGET_OPTIONS,
        "requests": after["window_requests"] - before["window_requests"],
        "429s": after["window_429"] - before["window_429"],
        "ok": sum(w["ok"] for w in workers),
        "failed": sum(w["failed"] for w in workers),
        "failure": failures[0] if failures else None,
        "wall_s": max(w["ended_at"] for w in workers) - min(began),
        # How far apart the processes started calling, and how late the last one was.
        "start_spread_s": max(began) - min(began),
        "start_late_s": max(began) - start_at,
        "warnings": sum(w["warnings"] for w in workers),
        "first_warning": warnings[0] if warnings else None,
    }
