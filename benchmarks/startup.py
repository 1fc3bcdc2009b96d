"""Start-up as a shell user feels it: the ``twochat`` command's wall time, and import time
(``python -c "<import>"`` less ``python -c pass``), in fresh processes (docs/performance.md)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import ROOT, Result, log, quartiles, table

IMPORTS = ("import twochat_async", "from twochat_async import TwoChatSession", "import aiohttp")
BARE = "python -c pass"


def commands() -> dict[str, list[str]]:
    """The commands timed: the installed ``twochat`` script, the imports, the bare interpreter."""
    script = Path(sys.executable).with_name("twochat")
    twochat = [str(script)] if script.exists() else [sys.executable, "-m", "twochat_async"]
    return {
        "twochat --version": [*twochat, "--version"],
        "twochat --help": [*twochat, "--help"],
        "twochat --fake reserve abc-123": [*twochat, "--fake", "reserve", "abc-123"],
        **{statement: [sys.executable, "-c", statement] for statement in IMPORTS},
        BARE: [sys.executable, "-c", "pass"],
    }


def startup(*, runs: int) -> Result:
    """The startup section: wall ms of each command, import ms of each import; quartiles."""
    timed = commands()
    wall: dict[str, list[float]] = {name: [] for name in timed}
    with tempfile.TemporaryDirectory(prefix="twochat-bench-pycache-") as tmp:
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env["PYTHONPYCACHEPREFIX"] = tmp

        def run(name: str) -> float:
            started = time.perf_counter()
            argv = timed[name]
            subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, timeout=120, check=True)  # noqa: S603
            return (time.perf_counter() - started) * 1000

        for name in timed:
            run(name)  # caches the bytecode of every module they import
        for i in range(runs):
            log(f"startup: round {i + 1}/{runs}")
            names = list(timed)
            for name in names[i % len(names) :] + names[: i % len(names)]:
                wall[name].append(run(name))
    imports = {s: [w - b for w, b in zip(wall[s], wall[BARE], strict=True)] for s in IMPORTS}
    return {
        "runs": runs,
        "wall_ms": {name: quartiles(v) for name, v in wall.items() if name not in IMPORTS},
        "import_ms": {name: quartiles(v) for name, v in imports.items()},
    }


def startup_report(out: Result) -> list[str]:
    """The startup section as text lines."""
    rows = [
        [name, what, f"{median:.1f}", f"{q1:.1f}-{q3:.1f}"]
        for what, key in (("wall", "wall_ms"), (f"less {BARE}", "import_ms"))
        for name, (q1, median, q3) in out[key].items()
    ]
    return [
        f"start-up: {out['runs']} fresh processes each",
        *table(["command or import", "measured", "median ms", "q1-q3"], rows),
    ]
