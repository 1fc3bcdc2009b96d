"""What the sections share: the call they make, the child processes they start, quartiles."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
API_KEY = "bench-key-0123456789"
GROUP_ID = "abc-123"
#: A group the stand-in answers only after ``servers.HOLD_SECONDS`` (the memory section).
SLOW_GROUP = "slow-group"

#: glibc malloc, fixed for every measuring child (read once, at start): asyncio's 256 KiB
#: read buffer then comes from the heap for every client alike (docs/performance.md).
PINNED_MALLOC = {"MALLOC_MMAP_THRESHOLD_": "1048576", "MALLOC_TRIM_THRESHOLD_": "2097152"}

Result = dict[str, Any]


def log(message: str) -> None:
    """Progress on stderr: stdout holds only the report."""
    print(message, file=sys.stderr, flush=True)


def quartiles(values: Sequence[float]) -> tuple[float, float, float]:
    """``(q1, median, q3)`` of ``values`` (all three the value itself when there is one)."""
    if len(values) == 1:
        return values[0], values[0], values[0]
    q1, median, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return q1, median, q3


def table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    """Aligned text lines: the first column to the left, the others to the right; a short
    row is blank to its end."""
    cells = [
        list(header),
        *([str(c) for c in row] + [""] * (len(header) - len(row)) for row in rows),
    ]
    widths = [max(map(len, column)) for column in zip(*cells, strict=True)]
    aligned = (
        [c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True))]
        for row in cells
    )
    return ["  " + "  ".join(row) for row in aligned]


def spawn(function: str, job: Result) -> subprocess.Popen[str]:
    """Start ``benchmarks.<function>(job)`` in a fresh interpreter with malloc pinned."""
    return subprocess.Popen(  # noqa: S603 - our own interpreter and package
        [sys.executable, "-m", "benchmarks", "--child", function, json.dumps(job)],
        cwd=ROOT,
        env=os.environ | PINNED_MALLOC,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def result(proc: subprocess.Popen[str], *, timeout: float = 900) -> Any:
    """Wait for a child of :func:`spawn`; return the JSON on its last line of output."""
    out, err = proc.communicate(timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"child {proc.args!r} exited {proc.returncode}: {err[-3000:]}")
    return json.loads(out.splitlines()[-1])


def child(function: str, job: Result) -> Any:
    """Run ``benchmarks.<function>(job)`` in a child process; return its result."""
    return result(spawn(function, job))
