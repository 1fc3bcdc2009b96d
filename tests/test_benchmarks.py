"""The benchmark (python -m benchmarks) runs each section at tiny sizes and counts honestly.

Numbers are checked for structure and consistency only, never against time bounds: the
suite must pass with both cores busy.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

# Subprocesses and private servers: the deployment-style tier.
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # benchmarks/ is not installed; it sits beside tests/

import benchmarks.startup  # noqa: E402
from benchmarks.__main__ import SECTIONS, parse  # noqa: E402
from benchmarks.budget import fleets  # noqa: E402
from benchmarks.common import API_KEY, PINNED_MALLOC  # noqa: E402
from benchmarks.cpu import cpu  # noqa: E402
from benchmarks.memory import memory  # noqa: E402
from benchmarks.servers import Servers, StandIn, Window  # noqa: E402
from benchmarks.startup import commands, startup  # noqa: E402

#: The clients the CPU section can time here (httpx comes with the bench extra only).
CLIENTS = ["sdk", "aiohttp"] + (["httpx"] if importlib.util.find_spec("httpx") else [])


@pytest.fixture(scope="module")
def servers() -> Iterator[Servers]:
    """The benchmark's private servers, shared by this module's tests."""
    started = Servers()
    yield started
    started.close()


def post(standin: StandIn, key: str = API_KEY) -> tuple[int, str | None]:
    """One reservation request to the stand-in: its status and Retry-After."""
    request = urllib.request.Request(  # noqa: S310 - loopback
        standin.url + "/open/numbers/reservations",
        data=b'{"group_id": "abc-123"}',
        headers={"X-User-API-Key": key, "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:  # noqa: S310
            return answer.status, answer.headers.get("Retry-After")
    except urllib.error.HTTPError as refused:
        with refused:
            return refused.code, refused.headers.get("Retry-After")


def test_the_window_refuses_past_its_limit_and_counts_refused_arrivals_too() -> None:
    """2 per second: a 3rd arrival is refused; a refused arrival still fills the window."""
    window = Window(2, 1.0)
    assert [window.admit("k", t) for t in (0.0, 0.1)] == [None, None]
    assert window.admit("k", 0.2) == pytest.approx(0.9)  # until 0.1 leaves; 0.2 itself stays
    assert window.admit("other", 0.2) is None  # counted per API key
    assert window.admit("k", 1.05) is not None  # 0.1 and the refused 0.2 are still inside
    assert window.admit("k", 2.5) is None
    assert Window(None, 1.0).admit("k", 0.0) is None


def test_the_standin_answers_429_with_retry_after_once_over_budget(servers: Servers) -> None:
    """Over its budget the stand-in refuses with 429 and Retry-After, and counts each one."""
    standin = servers.standin
    standin.reset(3, 60.0)  # a window no run on a loaded machine can outlast
    answers = [post(standin) for _ in range(5)]
    assert [status for status, _ in answers] == [201, 201, 201, 429, 429]
    assert all(int(after or 0) >= 1 for _, after in answers[3:])
    assert [status for _, _, status, _ in standin.arrivals()] == [201, 201, 201, 429, 429]
    standin.reset(None)
    assert [post(standin)[0] for _ in range(5)] == [201] * 5


def test_budget_counts_every_request_of_one_four_and_eight_processes(servers: Servers) -> None:
    """Each request the server saw is a call's final answer or a 429 it retried after.

    CI installs redis-server and sets TWOCHAT_REQUIRE_REDIS=1, so there the shared runs
    are measured, never skipped.
    """
    out = fleets(servers, 8, 600, money=False, loads=(False,))
    runs = out["runs"]
    if shutil.which("redis-server") is None:
        assert os.environ.get("TWOCHAT_REQUIRE_REDIS") != "1", "redis-server is required here"
        assert [run.get("status") for run in runs[1:]] == ["redis-server not installed"] * 2
        runs = runs[:1]
    assert [run["processes"] for run in runs] == [1, 4, 8][: len(runs)]
    for run in runs:
        assert run["calls"] == 8
        assert run["succeeded"] == 8, run["failures"]
        assert run["requests"] == run["succeeded"] + run["429s"]
        assert 0 < run["budget_used"] < 1.5
    assert runs[0]["redis_connections"] == 0
    assert all(1 <= run["redis_connections"] <= 4 for run in runs[1:])


def test_purchase_reports_its_wait_behind_the_queue(servers: Servers) -> None:
    """purchase() behind 6 queued reserve()s: its wait, and how many requests went first."""
    out = fleets(servers, 6, 600, money=True, loads=(False,))
    for run in out["runs"]:
        assert run["waited_s"] > 0
        assert 0 <= run["requests_ahead"] <= 6 + run["429s"]


def test_memory_measures_both_clients_with_calls_in_flight(servers: Servers) -> None:
    """The SDK and raw aiohttp each hold live allocations for their calls in flight."""
    out = memory(servers, calls=120)
    for name in ("sdk", "aiohttp"):
        assert out[name]["traced_kib_per_call"] > 0
        assert isinstance(out[name]["rss_kib_per_call"], float)


def test_startup_times_each_command_and_import(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each command gets a positive median and quartiles; an import, its wall time less the
    bare interpreter's in the same round (its quartiles ordered: it may be near 0)."""
    monkeypatch.setattr(benchmarks.startup, "IMPORTS", ("import json",))
    kept = ("twochat --version", "import json", "python -c pass")
    timed = {name: argv for name, argv in commands().items() if name in kept}
    monkeypatch.setattr(benchmarks.startup, "commands", lambda: timed)
    out = startup(runs=2)
    assert list(out["wall_ms"]) == ["twochat --version", "python -c pass"]
    assert list(out["import_ms"]) == ["import json"]
    for q1, median, q3 in out["wall_ms"].values():
        assert 0 < q1 <= median <= q3
    q1, median, q3 = out["import_ms"]["import json"]
    assert q1 <= median <= q3


def test_the_startup_commands_are_the_installed_ones() -> None:
    """The commands timed are this interpreter's `twochat` script (or -m), the imports, and
    python itself."""
    argvs = commands()
    assert set(argvs) == {
        "twochat --version",
        "twochat --help",
        "twochat --fake reserve abc-123",
        "import twochat_async",
        "from twochat_async import TwoChatSession",
        "import aiohttp",
        "python -c pass",
    }
    assert all(Path(argv[0]).exists() for argv in argvs.values())
    assert argvs["import aiohttp"][1:] == ["-c", "import aiohttp"]


def test_cpu_puts_the_three_clients_side_by_side_with_malloc_pinned(servers: Servers) -> None:
    """Per concurrency: every client's CPU per call, and the SDK / aiohttp ratio's quartiles."""
    out = cpu(servers, rounds=2, block=16)
    assert out["malloc"] == PINNED_MALLOC  # as the measuring child saw its environment
    assert set(out["by_concurrency"]) == {"1", "64"}
    for row in out["by_concurrency"].values():
        for name in CLIENTS:
            assert row[name]["cpu_us_per_call"] > 0
            assert len(row["samples"]["cpu_us"][name]) == 2
        ratio = row["sdk_over_aiohttp"]
        assert 0 < ratio["q1"] <= ratio["median"] <= ratio["q3"]
        assert ratio["met"] == (ratio["median"] <= 1.10)


def test_cpu_falls_back_to_the_standin_without_nginx(
    servers: Servers, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no nginx installed, the CPU section times the clients against the stand-in."""
    monkeypatch.setitem(servers.__dict__, "nginx", None)  # what a machine without it finds
    out = cpu(servers, rounds=1, block=8, concurrency=(1,))
    assert "stand-in" in out["server"]
    assert out["by_concurrency"]["1"]["sdk"]["cpu_us_per_call"] > 0


def test_the_command_runs_a_chosen_section_prints_it_and_writes_json(tmp_path: Path) -> None:
    """`python -m benchmarks purchase --json PATH` reports only that section, and saves it."""
    path = tmp_path / "results.json"
    proc = subprocess.run(  # noqa: S603 - our own interpreter and package
        [
            sys.executable,
            "-m",
            "benchmarks",
            "purchase",
            "--quick",
            "--queue",
            "4",
            "--json",
            str(path),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,  # a hang guard only
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "purchase() issued behind 4 queued reserve()s" in proc.stdout
    results = json.loads(path.read_text())
    assert set(results) == {"meta", "purchase"}
    assert results["meta"]["malloc"] == PINNED_MALLOC
    assert results["purchase"]["calls"] == 4


def test_the_command_refuses_an_unknown_section_and_sizes_quick_runs_small() -> None:
    """An unknown section is a usage error; --quick sizes what is not given, and only that."""
    with pytest.raises(SystemExit) as exit_:
        parse(["nope"])
    assert exit_.value.code == 2
    quick = parse(["cpu", "--quick", "--rounds", "7"])
    assert (quick.sections, quick.rounds, quick.block) == (["cpu"], 7, 50)
    assert parse([]).queue == 300
    assert list(SECTIONS) == ["budget", "purchase", "memory", "startup", "cpu"]
