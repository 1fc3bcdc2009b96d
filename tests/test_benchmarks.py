"""The benchmark harness runs end to end in ``--quick`` mode; its numbers are never checked."""

from __future__ import annotations

import json
import os
import shutil
import statistics
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.slow  # the harness's processes, servers and clients, end to end

TOP_LEVEL = {
    "meta",
    "clients",
    "ratios",
    "ratio_quartiles",
    "resilience",
    "scaling",
    "rss",
    "import_time",
    "server",
    "targets",
    "nginx",
    "budget",
    "separate_ratios",
    "interleaving",
}
RATIOS = {
    "sdk_over_aiohttp_cpu_c1",
    "sdk_over_aiohttp_cpu_c64",
    "sdk_over_aiohttp_calls_c1",
    "sdk_over_aiohttp_calls_c64",
    "sdk_over_httpx_calls_c64",
}
NGINX_RATIOS = {
    "nginx_sdk_over_aiohttp_cpu_c1",
    "nginx_sdk_over_aiohttp_cpu_c64",
    "nginx_sdk_over_aiohttp_calls_c1",
    "nginx_sdk_over_aiohttp_calls_c64",
}
TARGETS = (
    RATIOS
    | NGINX_RATIOS
    | {
        "rss_per_call_ratio",
        "budget_429s",
        "budget_extra_requests",
        "budget_shared_429s",
        "budget_shared_extra_requests",
        "import_ratio",
        "import_first_use_ratio",
        "scaling_max_over_min",
        "resilience_on_over_off_cpu_c1",
        "resilience_on_over_off_cpu_c64",
    }
)
TABLE_LINES = (
    "twochat_async reserve()",
    "raw aiohttp",
    "httpx.AsyncClient",
    "requests.Session",
    "faults/call",
    "SDK / aiohttp, CPU/call, conc 64",
    "nginx: SDK / aiohttp, CPU, conc 1",
    "retries+limit on / off, CPU per call, conc 64",
    "SDK scaling: CPU us/call",
    "import twochat_async",
    "calls in flight, server answering after 2 s",
    "against nginx",
    "budget: ",
    "429s at rate_limit=600",
    "429s, same calls, 4 processes, one RedisRateLimit",
    "4 processes sharing one RedisRateLimit",
    "SDK / aiohttp lines: both in one process, alternating blocks of",
    "the same from the separate processes of the tables above: CPU c1",
)


@pytest.fixture(scope="module")
def quick_run(benchmark_quick_run: tuple[int, str, str, Path]) -> tuple[str, dict[str, Any]]:
    """``python -m benchmarks.run --quick`` (started by conftest.py): its stdout and JSON."""
    returncode, stdout, stderr, out = benchmark_quick_run
    assert returncode == 0, stderr[-3000:]
    return stdout, json.loads(out.read_text())


def test_quick_run_prints_every_section_of_the_table(
    quick_run: tuple[str, dict[str, Any]],
) -> None:
    """The table names every client, the targets, the scaling, import and RSS sections."""
    stdout, _ = quick_run
    assert [line for line in TABLE_LINES if line not in stdout] == []


def test_quick_run_writes_json_with_the_expected_keys(
    quick_run: tuple[str, dict[str, Any]],
) -> None:
    """The JSON holds every section, every ratio and every target."""
    _, results = quick_run
    assert set(results) == TOP_LEVEL
    assert set(results["ratios"]) == RATIOS
    assert set(results["targets"]) == TARGETS
    assert all({"value", "limit", "met"} <= set(t) for t in results["targets"].values())
    assert {"by_n", "by_concurrency", "max_over_min"} <= set(results["scaling"])
    assert {"twochat_async_us", "aiohttp_attrs_cattrs_us", "ratio"} <= set(results["import_time"])
    assert {"on", "off", "on_over_off_cpu_c1", "on_over_off_cpu_c64"} <= set(results["resilience"])


def test_quick_run_measures_the_sdk_and_raw_aiohttp(
    quick_run: tuple[str, dict[str, Any]],
) -> None:
    """The SDK and raw aiohttp always run; httpx and requests run when installed."""
    _, results = quick_run
    clients = results["clients"]
    assert {"sdk", "aiohttp", "httpx", "requests"} <= set(clients)
    for name in ("sdk", "aiohttp", "sdk-off", "sdk-on"):
        for cell in clients[name].values():
            assert cell["status"] == "ok"
            assert cell["calls_per_s"] > 0
            assert cell["cpu_us_per_call"] > 0
    for name in ("httpx", "requests"):
        for cell in clients[name].values():
            assert cell["status"] in {"ok", "not installed"}
    assert results["rss"]["sdk"]["status"] == "ok"
    assert results["rss"]["kib_per_call_ratio"] is not None
    assert results["nginx"]["status"] in {"ok", "not installed"}
    assert {"requests", "429s", "ok"} <= set(results["budget"])


def test_quick_run_measures_the_budget_shared_across_processes(
    quick_run: tuple[str, dict[str, Any]],
) -> None:
    """The budget's calls, split across 4 processes sharing a RedisRateLimit, all count.

    CI installs redis-server (.ci/run) and sets TWOCHAT_REQUIRE_REDIS=1, so there the
    shared run is measured, never skipped (as in tests/test_redis.py).
    """
    _, results = quick_run
    shared = results["budget"]["shared_4_processes"]
    if shutil.which("redis-server") is None and os.environ.get("TWOCHAT_REQUIRE_REDIS") != "1":
        assert shared["status"] == "not installed"
        pytest.skip("redis-server is not installed: the shared run says 'not measured'")
    assert shared["status"] == "ok", shared
    assert shared["processes"] == 4
    assert shared["calls"] == results["budget"]["calls"]
    assert [worker["calls"] for worker in shared["workers"]] == [shared["calls"] // 4] * 4
    assert shared["ok"] + shared["failed"] == shared["calls"]
    assert shared["requests"] >= shared["calls"]
    assert {"429s", "wall_s", "start_spread_s"} <= set(shared)


def test_quick_run_pins_malloc_and_records_minor_faults(
    quick_run: tuple[str, dict[str, Any]],
) -> None:
    """Every timed run records its minor page faults; the JSON says how malloc was pinned."""
    _, results = quick_run
    assert set(results["meta"]["malloc"]) == {"MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_"}
    cells = [cell for row in results["clients"].values() for cell in row.values()]
    samples = [sample for cell in cells for sample in cell.get("samples", [])]
    assert samples
    assert all(sample["minor_faults"] >= 0 for sample in samples)
    assert all("minor_faults_per_call" in cell for cell in cells if cell["status"] == "ok")


def test_quick_run_holds_the_sdk_to_aiohttp_ratios_measured_side_by_side(
    quick_run: tuple[str, dict[str, Any]],
) -> None:
    """The SDK / aiohttp targets take their values from the one-process interleaved
    blocks, and the separate processes' own ratios are kept beside them."""
    _, results = quick_run
    sources = [(results, {name for name in RATIOS if "aiohttp" in name})]
    if results["nginx"]["status"] == "ok":
        sources.append((results["nginx"], NGINX_RATIOS))
    for source, names in sources:
        per_process = source["interleaving"]["per_process"]
        assert set(per_process) == set(source["separate_ratios"]) == names
        for name in names:
            assert len(per_process[name]) == source["interleaving"]["processes"]
            side_by_side = statistics.median(per_process[name])
            assert results["targets"][name]["value"] == source["ratios"][name] == side_by_side
            assert side_by_side > 0
