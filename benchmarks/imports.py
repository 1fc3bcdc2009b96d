"""Import time of the SDK against its three dependencies, from ``python -X importtime``.

Each statement of :data:`IMPORTS` runs in fresh interpreters, the statements rotated per
round; a statement's cost is the sum of the cumulative times of the top-level imports it
made (those the interpreter makes at start-up left out). ``twochat_async`` loads its
public names on first use, so ``import twochat_async`` alone is cheap; what a user pays
is ``from twochat_async import TwoChatSession``, measured beside it.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from benchmarks.measure import ROOT, child_env, log, paired_ratio, rotated

#: The statements timed: the package, its first use, and its dependencies alone.
IMPORTS = {
    "sdk": "import twochat_async",
    "sdk_first_use": "from twochat_async import TwoChatSession",
    "baseline": "import aiohttp, attrs, cattrs",
}

#: ``{module: (self us, cumulative us, depth)}``; depth 0 is a top-level import.
Timings = dict[str, tuple[int, int, int]]


def parse_importtime(stderr: str) -> Timings:
    """Read the ``import time: self | cumulative | name`` lines of ``-X importtime``."""
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


def import_once(statement: str, pycache: Path) -> Timings:
    """Run ``python -X importtime -c statement`` in a fresh interpreter.

    Bytecode is cached under ``pycache`` for every module alike: with
    ``PYTHONDONTWRITEBYTECODE`` set, an editable checkout would be compiled from source
    on every run while site-packages has its ``.pyc`` files.
    """
    env = {k: v for k, v in child_env().items() if k != "PYTHONDONTWRITEBYTECODE"}
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


def statement_cost(run: Timings, startup: set[str]) -> int:
    """Cumulative us of every top-level import the statement made (not the interpreter's)."""
    return sum(cum for name, (_, cum, depth) in run.items() if depth == 0 and name not in startup)


def import_time(*, runs: int) -> dict[str, Any]:
    """Median import cost of each statement over ``runs`` rounds, and the paired ratios."""
    timings: dict[str, list[Timings]] = {key: [] for key in IMPORTS}
    with tempfile.TemporaryDirectory(prefix="twochat-bench-pycache-") as tmp:
        pycache = Path(tmp)
        startup = set(import_once("pass", pycache))
        for statement in IMPORTS.values():  # compile and cache bytecode, unmeasured
            import_once(statement, pycache)
        for i in range(runs):
            log(f"import: run {i + 1}/{runs}")
            for key in rotated(list(IMPORTS), i):
                timings[key].append(import_once(IMPORTS[key], pycache))
    cost = {key: [statement_cost(run, startup) for run in timings[key]] for key in IMPORTS}
    # Round i of each statement ran back to back: pairing them cancels slow spells.
    as_samples = {key: [{"us": us} for us in cost[key]] for key in IMPORTS}
    ratio = paired_ratio(as_samples["sdk"], as_samples["baseline"], "us")
    first_ratio = paired_ratio(as_samples["sdk_first_use"], as_samples["baseline"], "us")
    # What using the SDK imports beyond its three dependencies, by median self time.
    seen_in_base = set().union(*timings["baseline"])
    extra: dict[str, list[int]] = {}
    for run in timings["sdk_first_use"]:
        for name, (self_us, _, _) in run.items():
            if name not in seen_in_base and name not in startup:
                extra.setdefault(name, []).append(self_us)
    heaviest = sorted(
        ((name, statistics.median(v)) for name, v in extra.items()), key=lambda x: -x[1]
    )
    return {
        "runs": runs,
        "statements": IMPORTS,
        "bytecode": "compiled once into a temporary PYTHONPYCACHEPREFIX, then cached",
        "twochat_async_us": statistics.median(cost["sdk"]),
        "first_use_us": statistics.median(cost["sdk_first_use"]),
        "aiohttp_attrs_cattrs_us": statistics.median(cost["baseline"]),
        "ratio": ratio[0] if ratio else None,
        "ratio_q1_q3": list(ratio[1:]) if ratio else None,
        "first_use_ratio": first_ratio[0] if first_ratio else None,
        "first_use_ratio_q1_q3": list(first_ratio[1:]) if first_ratio else None,
        "samples_us": cost,
        "extra_modules_self_us": heaviest[:10],
        "extra_modules_total_self_us": sum(v for _, v in heaviest),
    }
