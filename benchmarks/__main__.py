"""A benchmark of what twochat-async's users feel: ``python -m benchmarks``.

Sections, in the order they run (default: all): ``budget``, ``purchase``, ``memory``,
``startup``, ``cpu``. The report goes to stdout as each section ends, progress to stderr.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import json
import os
import platform
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.budget import budget_report, fleets, purchase_report
from benchmarks.common import PINNED_MALLOC, ROOT, Result
from benchmarks.cpu import cpu, cpu_report
from benchmarks.memory import memory, memory_report
from benchmarks.servers import Servers
from benchmarks.startup import startup, startup_report

Args = argparse.Namespace


def _loads(args: Args) -> tuple[bool, ...]:
    """The fleets run idle, then with every core saturated (--quick: idle only)."""
    return (False,) if args.quick else (False, True)


#: Each section: how it is measured, how it is reported.
SECTIONS: dict[str, tuple[Callable[[Servers, Args], Result], Callable[[Result], list[str]]]] = {
    "budget": (
        lambda s, a: fleets(s, a.calls, a.rate, money=False, loads=_loads(a)),
        budget_report,
    ),
    "purchase": (
        lambda s, a: fleets(s, a.queue, a.rate, money=True, loads=_loads(a)),
        purchase_report,
    ),
    "memory": (lambda s, a: memory(s, calls=a.in_flight), memory_report),
    "startup": (lambda s, a: startup(runs=a.runs), startup_report),
    "cpu": (lambda s, a: cpu(s, rounds=a.rounds, block=a.block), cpu_report),
}
DISTRIBUTIONS = ("twochat-async", "aiohttp", "httpx", "redis")
#: The sizes: option -> (help, full run, --quick).
SIZES = {
    "calls": ("budget: calls at once", 200, 20),
    "queue": ("purchase: reserve()s queued before it", 300, 20),
    "in_flight": ("memory: calls held open", 10_000, 200),
    "runs": ("startup: processes per command", 11, 2),
    "rounds": ("cpu: rounds of blocks", 40, 3),
    "block": ("cpu: calls per block", 400, 50),
}


def parse(argv: list[str] | None) -> Args:
    """The command line; sizes left unset take --quick's or the full run's values."""
    parser = argparse.ArgumentParser("python -m benchmarks", description=__doc__.split("\n")[0])
    parser.add_argument("sections", nargs="*", metavar="SECTION", help=", ".join(SECTIONS))
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    parser.add_argument("--json", type=Path, metavar="PATH", help="write every result here")
    parser.add_argument("--rate", type=int, default=600, help="rate_limit per minute (600)")
    for name, (text, full, quick) in SIZES.items():
        option = "--" + name.replace("_", "-")
        parser.add_argument(option, type=int, help=f"{text} ({full:,}; --quick {quick})")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    unknown = set(args.sections) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown section(s) {', '.join(sorted(unknown))}: pick from {list(SECTIONS)}")
    for name, (_, full, quick) in SIZES.items():
        if getattr(args, name) is None:
            setattr(args, name, quick if args.quick else full)
    return args


def meta(quick: bool) -> Result:
    """What a result depends on: the code, the versions, the machine and its load."""
    installed = {d.metadata["Name"].lower(): d.version for d in importlib.metadata.distributions()}
    try:  # the commit measured
        git = ["git", "describe", "--always", "--dirty"]
        commit = subprocess.run(git, cwd=ROOT, capture_output=True, text=True).stdout.strip()  # noqa: S603
    except OSError:  # no git here (an unpacked sdist, a chroot)
        commit = ""
    return {
        "quick": quick,
        "commit": commit or None,
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "load_before": os.getloadavg(),
        "versions": {name: installed.get(name) for name in DISTRIBUTIONS},
        "malloc": PINNED_MALLOC,
    }


def main(argv: list[str] | None = None) -> None:
    """Run the sections asked for; print each one's report; write the JSON if asked."""
    args = parse(argv)
    if args.child:  # benchmarks.<module>.<function>(job) for a parent: its result, last
        (module, function), job = args.child[0].rsplit(".", 1), json.loads(args.child[1])
        target: Callable[[Any], Any] = getattr(
            importlib.import_module(f"benchmarks.{module}"), function
        )
        print(json.dumps(target(job)), flush=True)
        return
    m = meta(args.quick)
    results: Result = {"meta": m}
    load = " ".join(f"{x:.2f}" for x in m["load_before"])
    print(
        f"twochat-async benchmark{' (quick)' if args.quick else ''}: commit {m['commit']}, ", end=""
    )
    print(f"Python {m['python']}, {m['cpus']} CPUs, load {load}")
    print("versions: " + ", ".join(f"{k} {v}" for k, v in m["versions"].items()))
    servers, started = Servers(), time.perf_counter()
    try:
        for name in args.sections or list(SECTIONS):
            measure, report = SECTIONS[name]
            results[name] = measure(servers, args)
            print("\n" + "\n".join(report(results[name])), flush=True)
    finally:
        servers.close()
    m["load_after"], m["seconds"] = os.getloadavg(), time.perf_counter() - started
    print(f"\n{m['seconds']:.0f} s; load after {' '.join(f'{x:.2f}' for x in m['load_after'])}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
