"""The SDK beside raw aiohttp, httpx and requests, in one run: speed, CPU, import, memory.

Run from the repository root (Python 3.10+, the package installed; httpx and requests
are optional — a client whose library is missing is reported as "not installed")::

    python -m benchmarks.run                 # full: about 8 minutes on 2 cores
    python -m benchmarks.run --quick         # CI smoke run: ~20 s, its numbers mean nothing
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
  in a loop; at concurrency 64 requests runs in 64 threads, one ``Session`` each.
* Per client and concurrency (1 and 64): calls/s (wall) and client CPU microseconds per
  call (``time.process_time()`` of the client process / N), each in a fresh process after
  a warm-up, repeated 5 times with the clients interleaved (order rotated every
  repetition) so machine noise hits all of them alike; the SDK variants and raw aiohttp,
  whose targets are tight, get 9 repetitions. Medians are reported; ratios are the
  median of the per-repetition ratios (paired, same repetition), shown with the
  quartiles of those pairs, which say how far one run can be trusted.
* Scaling of the SDK: CPU/call at N = 1,000 / 10,000 / 100,000 (concurrency 64) and at
  concurrency 1 / 16 / 64 / 256 / 1,024 (N = 5,000); largest / smallest. Raw aiohttp
  runs the concurrency axis too, since part of the growth there is aiohttp's own.
* Import: cumulative microseconds of ``twochat_async`` in ``python -X importtime -c
  "import twochat_async"`` against the sum of the top-level ``aiohttp``, ``attrs`` and
  ``cattrs`` entries of ``import aiohttp, attrs, cattrs``; median of fresh interpreters,
  bytecode cached alike for both. Because the package may load its submodules lazily,
  ``from twochat_async import TwoChatSession`` (what a user's first import costs) is
  measured too, as the sum of every top-level import it triggers.
* Peak RSS (``ru_maxrss``, fresh process) with 10,000 ``reserve()`` calls in flight at
  once (one ``asyncio.gather``), beside raw aiohttp doing the same.
* Retries and rate limit configured but never triggered, against both off: only if
  ``TwoChatSession`` accepts ``max_retries=`` / ``rate_limit=`` (checked with
  ``inspect.signature``); otherwise reported as n/a.

Only ratios within one run mean anything: the machine is shared and noisy. Even paired,
one run's CPU ratios have quartiles some 10-20 % apart on a busy 2-core machine, so a
few-percent difference between the SDK and raw aiohttp is beyond one run's resolution:
look at the quartiles, repeat the run, and use :mod:`benchmarks.profile` to see the
SDK's own share. The tests run ``--quick`` and check the output's shape, never its
numbers.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import inspect
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from benchmarks.clients import REQUIRES
from benchmarks.server import running_server

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "benchmarks" / "results.json"

CLIENTS = ("sdk", "aiohttp", "httpx", "requests")
LABELS = {
    "sdk": "twochat_async reserve()",
    "aiohttp": "raw aiohttp",
    "httpx": "httpx.AsyncClient",
    "requests": "requests.Session",
    "sdk-off": "SDK, retries+limit off",
    "sdk-on": "SDK, retries+limit on",
}
CONCURRENCY = (1, 64)

#: "Configured but not triggered": the default retry count of the resilience issue, and a
#: budget (requests per minute) no run can reach.
RESILIENCE_ON = {"max_retries": 2, "rate_limit": 10**9}
RESILIENCE_OFF = {"max_retries": 0, "rate_limit": None}


@dataclass(frozen=True)
class Mode:
    """How much work a run does."""

    name: str
    n: int
    reps: int
    pair_reps: int  # repetitions for the clients with tight targets (SDK, raw aiohttp)
    scaling_n: tuple[int, ...]
    scaling_conc: tuple[int, ...]
    scaling_fixed_n: int
    scaling_reps: int
    import_runs: int
    rss_in_flight: int
    batch: bool  # run each client's measurements in one process (fewer interpreters)


FULL = Mode("full", 2_000, 5, 9, (1_000, 10_000, 100_000), (1, 16, 64, 256, 1_024), 5_000, 3, 9,
            10_000, batch=False)  # fmt: skip
QUICK = Mode("quick", 200, 1, 1, (100, 200, 400), (1, 16, 64, 256, 1_024), 200, 1, 2, 500,
             batch=True)  # fmt: skip


def log(message: str) -> None:
    """Progress goes to stderr; stdout holds only the table."""
    print(message, file=sys.stderr, flush=True)


def warmup_calls(n: int, concurrency: int) -> int:
    """Enough calls to open every pooled connection and build every lazy cache."""
    return min(max(50, 2 * concurrency), max(50, n))


def available(client: str) -> bool:
    """Whether the library a client needs is installed."""
    return importlib.util.find_spec(REQUIRES[client.split("-")[0]]) is not None


def run_worker(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Run measurements in one fresh interpreter; a failed one comes back as ``error``."""
    proc = subprocess.run(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-m", "benchmarks.clients", json.dumps({"runs": runs})],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )
    if proc.returncode != 0:
        lines = proc.stderr.strip().splitlines() or [f"exit status {proc.returncode}"]
        return [{"error": lines[-1]} for _ in runs]
    results: list[dict[str, Any]] = json.loads(proc.stdout.strip().splitlines()[-1])
    return results


def measure_all(jobs: list[dict[str, Any]], batch: bool) -> list[dict[str, Any]]:
    """Run every job (fresh process each, or one process per client when ``batch``)."""
    if not batch:
        results = []
        for index, job in enumerate(jobs, 1):
            log(f"  [{index}/{len(jobs)}] {job['client']} c={job['concurrency']} n={job['n']}")
            results.extend(run_worker([job]))
        return results
    by_client: dict[str, list[int]] = {}
    for index, job in enumerate(jobs):
        by_client.setdefault(job["client"], []).append(index)
    merged: list[dict[str, Any]] = [{} for _ in jobs]
    for client, indexes in by_client.items():
        log(f"  {client}: {len(indexes)} runs in one process")
        for index, result in zip(indexes, run_worker([jobs[i] for i in indexes]), strict=True):
            merged[index] = result
    return merged


def summarize(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Median calls/s and CPU/call of a cell's samples, with their spread."""
    errors = [s["error"] for s in samples if "error" in s]
    if errors:
        return {"status": "error", "error": errors[0]}
    cpu = [s["cpu_us_per_call"] for s in samples]
    calls = [s["calls_per_s"] for s in samples]
    return {
        "status": "ok",
        "calls_per_s": statistics.median(calls),
        "cpu_us_per_call": statistics.median(cpu),
        "cpu_spread": (max(cpu) - min(cpu)) / statistics.median(cpu),
        "client_busy": statistics.median(s["cpu_s"] / s["wall_s"] for s in samples),
        "server_busy_max": max(s["server_busy"] for s in samples),
        "server_us_per_request": statistics.median(
            s["server_cpu_s"] / max(1, s["server_requests"]) * 1e6 for s in samples
        ),
        "samples": samples,
    }


def paired_ratio(
    a: list[dict[str, Any]], b: list[dict[str, Any]], key: str
) -> tuple[float, float, float] | None:
    """``(median, q1, q3)`` over repetitions of ``a[key] / b[key]``, or ``None``.

    Sample ``i`` of both lists comes from repetition ``i``, timed minutes apart at most:
    pairing them cancels most of the machine's drift.
    """
    pairs = list(zip(a, b, strict=False))
    ratios = [x[key] / y[key] for x, y in pairs if key in x and key in y]
    if not ratios or len(ratios) != len(pairs):
        return None
    if len(ratios) == 1:
        return ratios[0], ratios[0], ratios[0]
    q1, median, q3 = statistics.quantiles(ratios, n=4, method="inclusive")
    return median, q1, q3


def rotated(items: Sequence[str], by: int) -> list[str]:
    """``items`` starting at position ``by``: no client is always timed first."""
    by %= len(items)
    return [*items[by:], *items[:by]]


def resilience_options() -> tuple[dict[str, Any], dict[str, Any], list[str]]:
    """The on/off keywords ``TwoChatSession`` accepts today (empty when it has none)."""
    from twochat_async import TwoChatSession

    params = inspect.signature(TwoChatSession).parameters
    accepted = [name for name in RESILIENCE_ON if name in params]
    on = {name: RESILIENCE_ON[name] for name in accepted}
    off = {name: RESILIENCE_OFF[name] for name in accepted}
    return on, off, accepted


def compare_clients(url: str, mode: Mode) -> tuple[dict[str, Any], dict[str, Any]]:
    """The main table: every client at concurrency 1 and 64, interleaved repetitions."""
    on, off, accepted = resilience_options()
    options: dict[str, dict[str, Any]] = {"sdk": {}, "aiohttp": {}, "httpx": {}, "requests": {}}
    if accepted:
        options |= {"sdk-off": off, "sdk-on": on}
    clients = [c for c in options if available(c)]
    samples: dict[tuple[str, int], list[dict[str, Any]]] = {
        (c, k): [] for c in clients for k in CONCURRENCY
    }
    tight = [c for c in clients if c.startswith(("sdk", "aiohttp"))]
    total = max(mode.reps, mode.pair_reps)
    for rep in range(total):
        log(f"clients: repetition {rep + 1}/{total}")
        jobs: list[dict[str, Any]] = [
            {
                "client": client.split("-")[0],
                "label": client,
                "options": options[client],
                "base_url": url,
                "n": mode.n,
                "concurrency": k,
                "warmup": warmup_calls(mode.n, k),
            }
            for k in CONCURRENCY
            for client in rotated(clients if rep < mode.reps else tight, rep)
        ]
        for job, result in zip(jobs, measure_all(jobs, mode.batch), strict=True):
            samples[job["label"], job["concurrency"]].append(result)

    table: dict[str, Any] = {}
    for client in options:
        table[client] = {}
        for k in CONCURRENCY:
            cell = (
                summarize(samples[client, k]) if client in clients else {"status": "not installed"}
            )
            if client == "requests":
                cell["how"] = "loop" if k == 1 else f"{k} threads, one Session each"
            table[client][f"c{k}"] = cell

    quartiles: dict[str, list[float] | None] = {}

    def ratio(name: str, a: str, b: str, k: int, key: str) -> float | None:
        found = None
        if (a, k) in samples and (b, k) in samples:
            found = paired_ratio(samples[a, k], samples[b, k], key)
        quartiles[name] = None if found is None else [found[1], found[2]]
        return None if found is None else found[0]

    cpu, calls = "cpu_us_per_call", "calls_per_s"
    ratios = {
        "sdk_over_aiohttp_cpu_c1": ratio("sdk_over_aiohttp_cpu_c1", "sdk", "aiohttp", 1, cpu),
        "sdk_over_aiohttp_cpu_c64": ratio("sdk_over_aiohttp_cpu_c64", "sdk", "aiohttp", 64, cpu),
        "sdk_over_aiohttp_calls_c1": ratio("sdk_over_aiohttp_calls_c1", "sdk", "aiohttp", 1, calls),
        "sdk_over_aiohttp_calls_c64": ratio(
            "sdk_over_aiohttp_calls_c64", "sdk", "aiohttp", 64, calls
        ),
        "sdk_over_httpx_calls_c64": ratio("sdk_over_httpx_calls_c64", "sdk", "httpx", 64, calls),
    }
    resilience: dict[str, Any] = {
        "accepted_options": accepted,
        "on": on,
        "off": off,
        "status": "ok" if accepted else "n/a",
    }
    if not accepted:
        resilience["reason"] = "TwoChatSession accepts neither max_retries= nor rate_limit="
    for k in CONCURRENCY:
        name = f"resilience_on_over_off_cpu_c{k}"
        resilience[f"on_over_off_cpu_c{k}"] = ratio(name, "sdk-on", "sdk-off", k, cpu)
    return {"clients": table, "ratios": ratios, "ratio_quartiles": quartiles}, resilience


def scaling(url: str, mode: Mode) -> dict[str, Any]:
    """CPU per call of the SDK as N and concurrency grow, raw aiohttp beside it.

    Raw aiohttp runs the concurrency axis too: at concurrency 1 every call pays a loop
    iteration of its own, and past the pool's 100 connections aiohttp queues the rest;
    the SDK / aiohttp column shows how much of the growth is the SDK's own.
    """
    sdk_cells = [("sdk", n, 64) for n in mode.scaling_n]
    sdk_cells += [("sdk", mode.scaling_fixed_n, k) for k in mode.scaling_conc]
    raw_cells = [("aiohttp", mode.scaling_fixed_n, k) for k in mode.scaling_conc]
    cells = list(dict.fromkeys(sdk_cells + raw_cells))
    samples: dict[tuple[str, int, int], list[dict[str, Any]]] = {cell: [] for cell in cells}
    for rep in range(mode.scaling_reps):
        log(f"scaling: repetition {rep + 1}/{mode.scaling_reps}")
        order = [cells[(i + rep) % len(cells)] for i in range(len(cells))]
        jobs = [
            {"client": client, "base_url": url, "n": n, "concurrency": k,
             "warmup": warmup_calls(n, k)}
            for client, n, k in order
        ]  # fmt: skip
        for cell, result in zip(order, measure_all(jobs, mode.batch), strict=True):
            samples[cell].append(result)
    summary = {cell: summarize(samples[cell]) for cell in cells}
    ok = {cell: s["cpu_us_per_call"] for cell, s in summary.items() if s["status"] == "ok"}

    def spread(keys: list[tuple[str, int, int]]) -> float | None:
        values = [ok[key] for key in keys if key in ok]
        return max(values) / min(values) if len(values) == len(keys) and values else None

    by_n = [("sdk", n, 64) for n in mode.scaling_n]
    by_conc = [("sdk", mode.scaling_fixed_n, k) for k in mode.scaling_conc]
    over_raw = {}
    for k in mode.scaling_conc:
        found = paired_ratio(
            samples["sdk", mode.scaling_fixed_n, k],
            samples["aiohttp", mode.scaling_fixed_n, k],
            "cpu_us_per_call",
        )
        over_raw[str(k)] = None if found is None else found[0]
    sdk_unique = list(dict.fromkeys(sdk_cells))
    return {
        "by_n": {str(cell[1]): summary[cell] for cell in by_n},
        "by_concurrency": {str(cell[2]): summary[cell] for cell in by_conc},
        "aiohttp_by_concurrency": {str(cell[2]): summary[cell] for cell in raw_cells},
        "sdk_over_aiohttp_by_concurrency": over_raw,
        "fixed_n": mode.scaling_fixed_n,
        "concurrency_for_n": 64,
        "max_over_min_by_n": spread(by_n),
        "max_over_min_by_concurrency": spread(by_conc),
        "aiohttp_max_over_min_by_concurrency": spread(raw_cells),
        "max_over_min": spread(sdk_unique),
    }


def parse_importtime(stderr: str) -> dict[str, tuple[int, int, int]]:
    """``{module: (self us, cumulative us, depth)}`` from ``-X importtime`` output."""
    modules = {}
    for line in stderr.splitlines():
        if not line.startswith("import time:"):
            continue
        parts = line[len("import time:") :].split("|")
        if len(parts) != 3 or not parts[0].strip().isdigit():
            continue  # the header line
        name = parts[2].rstrip()
        depth = (len(name) - len(name.lstrip()) - 1) // 2
        modules[name.strip()] = (int(parts[0]), int(parts[1]), depth)
    return modules


def import_once(statement: str, pycache: Path) -> dict[str, tuple[int, int, int]]:
    """Run ``python -X importtime -c statement`` in a fresh interpreter.

    Bytecode is cached under ``pycache`` for every module alike: with
    ``PYTHONDONTWRITEBYTECODE`` set (as on our machines) an editable checkout would be
    compiled from source on every run while site-packages has its ``.pyc`` files.
    """
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(pycache)
    proc = subprocess.run(  # noqa: S603 - our own interpreter
        [sys.executable, "-X", "importtime", "-c", statement],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return parse_importtime(proc.stderr)


#: The issue's import comparison, plus what a user's first import of the session costs:
#: ``twochat_async`` may load its submodules lazily, which moves their cost there.
IMPORTS = {
    "sdk": "import twochat_async",
    "sdk_first_use": "from twochat_async import TwoChatSession",
    "baseline": "import aiohttp, attrs, cattrs",
}


def statement_cost(run: dict[str, tuple[int, int, int]], startup: set[str]) -> int:
    """Cumulative us of every top-level import the statement made (not the interpreter's)."""
    return sum(cum for name, (_, cum, depth) in run.items() if depth == 0 and name not in startup)


def import_time(mode: Mode) -> dict[str, Any]:
    """Median import cost of the SDK against aiohttp + attrs + cattrs, fresh interpreters."""
    runs: dict[str, list[dict[str, tuple[int, int, int]]]] = {key: [] for key in IMPORTS}
    with tempfile.TemporaryDirectory(prefix="twochat-bench-pycache-") as tmp:
        pycache = Path(tmp)
        startup = set(import_once("pass", pycache))
        for statement in IMPORTS.values():  # compile and cache bytecode, unmeasured
            import_once(statement, pycache)
        for i in range(mode.import_runs):
            log(f"import: run {i + 1}/{mode.import_runs}")
            for key in rotated(list(IMPORTS), i):
                runs[key].append(import_once(IMPORTS[key], pycache))
    cost = {key: [statement_cost(run, startup) for run in runs[key]] for key in IMPORTS}
    sdk, first, base = (statistics.median(cost[key]) for key in IMPORTS)
    # Runs i of each statement are adjacent in time: pairing them cancels slow spells.
    as_samples = {key: [{"us": us} for us in cost[key]] for key in IMPORTS}
    ratio = paired_ratio(as_samples["sdk"], as_samples["baseline"], "us")
    first_ratio = paired_ratio(as_samples["sdk_first_use"], as_samples["baseline"], "us")
    # What using the SDK imports beyond its three dependencies, by median self time.
    seen_in_base = set().union(*runs["baseline"])
    extra: dict[str, list[int]] = {}
    for run in runs["sdk_first_use"]:
        for name, (self_us, _, _) in run.items():
            if name not in seen_in_base and name not in startup:
                extra.setdefault(name, []).append(self_us)
    heaviest = sorted(
        ((name, statistics.median(v)) for name, v in extra.items()), key=lambda x: -x[1]
    )
    return {
        "runs": mode.import_runs,
        "statements": IMPORTS,
        "bytecode": "compiled once into a temporary PYTHONPYCACHEPREFIX, then cached",
        "twochat_async_us": sdk,
        "first_use_us": first,
        "aiohttp_attrs_cattrs_us": base,
        "ratio": ratio[0] if ratio else None,
        "ratio_q1_q3": list(ratio[1:]) if ratio else None,
        "first_use_ratio": first_ratio[0] if first_ratio else None,
        "first_use_ratio_q1_q3": list(first_ratio[1:]) if first_ratio else None,
        "samples_us": cost,
        "extra_modules_self_us": heaviest[:10],
        "extra_modules_total_self_us": sum(v for _, v in heaviest),
    }


def peak_rss(url: str, mode: Mode) -> dict[str, Any]:
    """Peak RSS of a fresh process with ``rss_in_flight`` calls awaiting at once."""
    result: dict[str, Any] = {"in_flight": mode.rss_in_flight}
    for client in ("sdk", "aiohttp"):
        log(f"rss: {client} with {mode.rss_in_flight} calls in flight")
        job = {"kind": "rss", "client": client, "base_url": url, "n": mode.rss_in_flight,
               "concurrency": mode.rss_in_flight, "warmup": 200}  # fmt: skip
        (out,) = run_worker([job])
        result[client] = out | {"status": "error" if "error" in out else "ok"}
    return result


def verdict(value: float | None, limit: float, higher_is_better: bool) -> dict[str, Any]:
    """A target's measured value, its limit and whether it is met (``None``: unmeasured)."""
    if value is None:
        return {"value": None, "limit": limit, "met": None}
    met = value >= limit if higher_is_better else value <= limit
    return {"value": value, "limit": limit, "met": met}


def _with_quartiles(verdicts: dict[str, Any], quartiles: dict[str, Any]) -> dict[str, Any]:
    for name, found in verdicts.items():
        found["q1_q3"] = quartiles.get(name)
    return verdicts


def targets(results: dict[str, Any]) -> dict[str, Any]:
    """The issue's targets, each with its measured ratio."""
    r, res = results["ratios"], results["resilience"]
    verdicts = {
        "sdk_over_aiohttp_cpu_c1": verdict(r["sdk_over_aiohttp_cpu_c1"], 1.10, False),
        "sdk_over_aiohttp_cpu_c64": verdict(r["sdk_over_aiohttp_cpu_c64"], 1.10, False),
        "sdk_over_aiohttp_calls_c1": verdict(r["sdk_over_aiohttp_calls_c1"], 0.90, True),
        "sdk_over_aiohttp_calls_c64": verdict(r["sdk_over_aiohttp_calls_c64"], 0.90, True),
        "sdk_over_httpx_calls_c64": verdict(r["sdk_over_httpx_calls_c64"], 3.0, True),
        "import_ratio": verdict(results["import_time"]["ratio"], 1.2, False),
        "import_first_use_ratio": verdict(results["import_time"]["first_use_ratio"], 1.2, False),
        "scaling_max_over_min": verdict(results["scaling"]["max_over_min"], 1.3, False),
        "resilience_on_over_off_cpu_c1": verdict(res["on_over_off_cpu_c1"], 1.05, False),
        "resilience_on_over_off_cpu_c64": verdict(res["on_over_off_cpu_c64"], 1.05, False),
    }
    imp = results["import_time"]
    quartiles = results["ratio_quartiles"] | {
        "import_ratio": imp["ratio_q1_q3"],
        "import_first_use_ratio": imp["first_use_ratio_q1_q3"],
    }
    return _with_quartiles(verdicts, quartiles)


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
    """Versions of everything measured."""
    found: dict[str, str | None] = {}
    for dist in ("twochat-async", "aiohttp", "attrs", "cattrs", "httpx", "httpcore", "requests"):
        try:
            found[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            found[dist] = None
    return found


# -- the table ----------------------------------------------------------------------------


def _num(value: float | None, digits: int = 0) -> str:
    return "n/a" if value is None else f"{value:,.{digits}f}"


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 100:.0f} %"


def render(results: dict[str, Any]) -> str:
    """The plain-text table printed to stdout."""
    meta, lines = results["meta"], list[str]()
    add = lines.append
    add(
        f"twochat-async benchmark ({meta['mode']}): N={meta['n']:,} calls per run, "
        f"{meta['reps']} repetition(s) ({meta['pair_reps']} for the SDK and raw aiohttp), "
        f"medians; Python {meta['python']}, "
        f"{meta['cpus']} CPUs, load {meta['loadavg_start']} -> {meta['loadavg_end']}"
    )
    git = meta["git"]
    dirty = " + uncommitted library changes" if git["library_dirty"] else ""
    add(f"library: commit {git['commit']}{dirty}; versions {_versions_line(meta['versions'])}")
    server = results["server"]
    add(
        f"server: one asyncio.Protocol process; busiest timed run used "
        f"{_pct(server['busy_max'])} of a core, median {_num(server['us_per_request'], 1)} "
        f"us/request -> {server['verdict']}"
    )
    add("")
    header = f"{'client':<27}{'conc':>6}{'calls/s':>11}{'CPU us/call':>13}{'spread':>8}"
    add(header + f"{'client CPU':>12}  note")
    add("-" * (len(header) + 20))
    for k in CONCURRENCY:
        for client, cells in results["clients"].items():
            cell = cells[f"c{k}"]
            note = cell.get("how", "")
            if cell["status"] != "ok":
                status = cell["status"] + (f": {cell['error']}" if "error" in cell else "")
                add(f"{LABELS[client]:<27}{k:>6}  {status}")
                continue
            add(
                f"{LABELS[client]:<27}{k:>6}{_num(cell['calls_per_s']):>11}"
                f"{_num(cell['cpu_us_per_call'], 1):>13}{_pct(cell['cpu_spread']):>8}"
                f"{_pct(cell['client_busy']):>12}  {note}"
            )
    add("(spread: (max-min)/median of CPU/call over repetitions; client CPU: process CPU/wall)")
    add("")
    add(
        f"{'target (ratio: median of per-repetition pairs)':<52}{'value':>8}{'limit':>9}  met"
        "  q1-q3 of pairs"
    )
    add("-" * 91)
    names = {
        "sdk_over_aiohttp_cpu_c1": "SDK / aiohttp, CPU per call, conc 1",
        "sdk_over_aiohttp_cpu_c64": "SDK / aiohttp, CPU per call, conc 64",
        "sdk_over_aiohttp_calls_c1": "SDK / aiohttp, calls/s, conc 1",
        "sdk_over_aiohttp_calls_c64": "SDK / aiohttp, calls/s, conc 64",
        "sdk_over_httpx_calls_c64": "SDK / httpx, calls/s, conc 64",
        "import_ratio": "import twochat_async / aiohttp+attrs+cattrs",
        "import_first_use_ratio": "from twochat_async import TwoChatSession / same",
        "scaling_max_over_min": "SDK CPU/call, scaling table largest / smallest",
        "resilience_on_over_off_cpu_c1": "retries+limit on / off, CPU per call, conc 1",
        "resilience_on_over_off_cpu_c64": "retries+limit on / off, CPU per call, conc 64",
    }
    for key, label in names.items():
        t = results["targets"][key]
        sign = ">=" if key.endswith(("calls_c1", "calls_c64")) else "<="
        met = {True: "yes", False: "NO", None: "n/a"}[t["met"]]
        spread = "" if not t["q1_q3"] else f"{t['q1_q3'][0]:.2f}-{t['q1_q3'][1]:.2f}"
        add(f"{label:<52}{_num(t['value'], 2):>8}{sign:>5}{t['limit']:>4.2f}  {met:<5}{spread}")
    res = results["resilience"]
    if res["status"] != "ok":
        add(f"  (retries+limit: n/a, {res['reason']})")
    else:
        add(f"  (retries+limit on = {res['on']}, off = {res['off']})")
    add("")
    sc = results["scaling"]
    add(f"SDK scaling: CPU us/call (median of {meta['scaling_reps']})")
    for n, cell in sc["by_n"].items():
        add(f"  N={int(n):>9,}  conc {sc['concurrency_for_n']:>5}  {_cell_cpu(cell)}")
    for k, cell in sc["by_concurrency"].items():
        raw = sc["aiohttp_by_concurrency"][k]
        raw_cpu = f"{raw['cpu_us_per_call']:>8.1f}" if raw["status"] == "ok" else raw["status"]
        add(
            f"  N={sc['fixed_n']:>9,}  conc {int(k):>5,}  {_cell_cpu(cell)}"
            f"   raw aiohttp {raw_cpu}  SDK/aiohttp "
            f"{_num(sc['sdk_over_aiohttp_by_concurrency'][k], 2)}"
        )
    add(
        f"  SDK largest / smallest: {_num(sc['max_over_min'], 2)} "
        f"(by N {_num(sc['max_over_min_by_n'], 2)}, "
        f"by concurrency {_num(sc['max_over_min_by_concurrency'], 2)}; "
        f"raw aiohttp by concurrency {_num(sc['aiohttp_max_over_min_by_concurrency'], 2)})"
    )
    add("")
    imp = results["import_time"]
    add(
        f"import time, cumulative (median of {imp['runs']} fresh interpreters, bytecode cached;"
        " ratios above are paired per run)"
    )
    base = imp["aiohttp_attrs_cattrs_us"]
    for key, label in (("twochat_async_us", "sdk"), ("first_use_us", "sdk_first_use")):
        statement = imp["statements"][label]
        add(f"  {statement:<42}{imp[key] / 1000:>8.1f} ms")
    add(f"  {imp['statements']['baseline']:<42}{base / 1000:>8.1f} ms")
    heavy = ", ".join(f"{name} {us / 1000:.1f}" for name, us in imp["extra_modules_self_us"][:6])
    add(f"  modules only the SDK imports, self ms: {heavy or 'none'}")
    add("")
    rss = results["rss"]
    add(f"peak RSS with {rss['in_flight']:,} calls in flight (fresh process, ru_maxrss)")
    for client in ("sdk", "aiohttp"):
        out = rss[client]
        if out["status"] != "ok":
            add(f"  {LABELS[client]:<25} error: {out['error']}")
        else:
            add(
                f"  {LABELS[client]:<25}{out['peak_mib']:>8.1f} MiB "
                f"(after setup and warm-up {out['setup_mib']:.1f} MiB)"
            )
    return "\n".join(lines)


def _versions_line(found: dict[str, str | None]) -> str:
    return ", ".join(f"{name} {version}" for name, version in found.items() if version)


def _cell_cpu(cell: dict[str, Any]) -> str:
    if cell["status"] != "ok":
        return f"{cell['status']}: {cell.get('error', '')}"
    return f"{cell['cpu_us_per_call']:>8.1f}  (spread {_pct(cell['cpu_spread'])})"


# -- main ---------------------------------------------------------------------------------


def server_summary(results: dict[str, Any]) -> dict[str, Any]:
    """How busy the server was over every timed run of the comparison and scaling."""
    samples: list[dict[str, Any]] = []
    for cells in results["clients"].values():
        for cell in cells.values():
            samples += cell.get("samples", [])
    for axis in ("by_n", "by_concurrency", "aiohttp_by_concurrency"):
        for cell in results["scaling"][axis].values():
            samples += cell.get("samples", [])
    busy = [s["server_busy"] for s in samples if "server_busy" in s]
    per_request = [
        s["server_cpu_s"] / s["server_requests"] * 1e6 for s in samples if s.get("server_requests")
    ]
    busy_max = max(busy) if busy else None
    return {
        "busy_max": busy_max,
        "us_per_request": statistics.median(per_request) if per_request else None,
        "verdict": "n/a"
        if busy_max is None
        else ("not the bottleneck" if busy_max < 0.8 else "MAY BE THE BOTTLENECK"),
    }


def failed(results: dict[str, Any]) -> list[str]:
    """Measurements that errored (a missing optional library is not a failure)."""
    errors = [
        f"{client} c{k}: {cell['error']}"
        for client, cells in results["clients"].items()
        for k, cell in ((k, cells[f"c{k}"]) for k in CONCURRENCY)
        if cell["status"] == "error"
    ]
    for axis in ("by_n", "by_concurrency", "aiohttp_by_concurrency"):
        errors += [
            f"scaling {axis} {key}: {cell['error']}"
            for key, cell in results["scaling"][axis].items()
            if cell["status"] == "error"
        ]
    errors += [
        f"rss {c}: {results['rss'][c]['error']}"
        for c in ("sdk", "aiohttp")
        if results["rss"][c]["status"] == "error"
    ]
    return errors


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print the table, write the JSON; exit 1 if a measurement failed."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.run", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--quick", action="store_true", help="tiny sizes, to prove it works")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON results path")
    parser.add_argument("--reps", type=int, help="repetitions of the client comparison")
    parser.add_argument("-n", type=int, help="calls per run of the client comparison")
    args = parser.parse_args(argv)
    mode = QUICK if args.quick else FULL
    if args.reps or args.n:
        overrides = {"reps": args.reps or mode.reps, "n": args.n or mode.n}
        mode = Mode(**(asdict(mode) | overrides))

    started = time.perf_counter()
    meta = {
        "mode": mode.name,
        "n": mode.n,
        "reps": mode.reps,
        "pair_reps": mode.pair_reps,
        "scaling_reps": mode.scaling_reps,
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "loadavg_start": _loadavg(),
        "versions": versions(),
        "git": git_state(),
        "command": "python -m benchmarks.run" + (" --quick" if args.quick else ""),
    }
    results: dict[str, Any] = {"meta": meta}
    with running_server() as (url, pid):
        meta["server_pid"] = pid
        step: Callable[[], Any]
        comparison, results["resilience"] = compare_clients(url, mode)
        results |= comparison
        for key, step in (
            ("scaling", lambda: scaling(url, mode)),
            ("rss", lambda: peak_rss(url, mode)),
            ("import_time", lambda: import_time(mode)),
        ):
            results[key] = step()
    meta["loadavg_end"] = _loadavg()
    meta["seconds"] = round(time.perf_counter() - started, 1)
    results["server"] = server_summary(results)
    results["targets"] = targets(results)

    print(render(results))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    log(f"wrote {args.out} in {meta['seconds']} s")
    errors = failed(results)
    for error in errors:
        log(f"FAILED: {error}")
    return 1 if errors else 0


def _loadavg() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


if __name__ == "__main__":
    sys.exit(main())
