"""Start-up as a shell user feels it: the ``twochat`` command's wall time, and import time.

Each command runs in fresh processes, the commands rotated per round so that a slow
spell of the host falls on all of them; medians. Bytecode is compiled once, unmeasured,
into a temporary ``PYTHONPYCACHEPREFIX`` (with ``PYTHONDONTWRITEBYTECODE`` set, an
editable checkout would compile from source on every run).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import ROOT, Result, log, quartiles, table

IMPORTS = ("import twochat_async", "from twochat_async import TwoChatSession", "import aiohttp")


def commands() -> dict[str, list[str]]:
    """The commands timed: the installed ``twochat`` script, and the bare interpreter."""
    script = Path(sys.executable).with_name("twochat")
    twochat = [str(script)] if script.exists() else [sys.executable, "-m", "twochat_async"]
    return {
        "twochat --version": [*twochat, "--version"],
        "twochat --help": [*twochat, "--help"],
        "twochat --fake reserve abc-123": [*twochat, "--fake", "reserve", "abc-123"],
        "python -c pass": [sys.executable, "-c", "pass"],
    }


def import_ms(stderr: str, startup: set[str]) -> float:
    """Milliseconds of the top-level imports in ``-X importtime`` output, start-up's left out."""
    total = 0
    for line in stderr.splitlines():
        _, cumulative, name = ([*line.split("|"), "", ""])[:3]
        # Top-level imports are indented by one space; the header's cumulative is a word.
        if cumulative.strip().isdigit() and name[:2] != "  " and name.strip() not in startup:
            total += int(cumulative)
    return total / 1000


def startup(*, runs: int) -> Result:
    """The startup section: wall ms of each command, import ms of each import; quartiles."""
    with tempfile.TemporaryDirectory(prefix="twochat-bench-pycache-") as tmp:
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env["PYTHONPYCACHEPREFIX"] = tmp

        def run(*argv: str) -> str:
            return subprocess.run(  # noqa: S603 - our own interpreter and command
                argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=True
            ).stderr

        timed = commands()
        for argv in timed.values():
            run(*argv)  # caches the bytecode of every module they import
        at_startup = {
            line.split("|")[-1].strip()
            for line in run(sys.executable, "-X", "importtime", "-c", "pass").splitlines()
        }
        wall: dict[str, list[float]] = {name: [] for name in timed}
        imported: dict[str, list[float]] = {name: [] for name in IMPORTS}
        for i in range(runs):
            log(f"startup: round {i + 1}/{runs}")
            names = list(timed)
            for name in names[i % len(names) :] + names[: i % len(names)]:
                started = time.perf_counter()
                run(*timed[name])
                wall[name].append((time.perf_counter() - started) * 1000)
            for statement in IMPORTS:
                stderr = run(sys.executable, "-X", "importtime", "-c", statement)
                imported[statement].append(import_ms(stderr, at_startup))
    return {
        "runs": runs,
        "wall_ms": {name: quartiles(v) for name, v in wall.items()},
        "import_ms": {name: quartiles(v) for name, v in imported.items()},
    }


def startup_report(out: Result) -> list[str]:
    """The startup section as text lines."""
    rows = [
        [name, what, f"{median:.1f}", f"{q1:.1f}-{q3:.1f}"]
        for what, key in (("wall", "wall_ms"), ("-X importtime", "import_ms"))
        for name, (q1, median, q3) in out[key].items()
    ]
    return [
        f"start-up: {out['runs']} fresh processes each",
        *table(["command or import", "measured", "median ms", "q1-q3"], rows),
    ]
