"""A private ``redis-server`` for the benchmarks, when it is installed (Debian: ``redis-server``).

:func:`running_redis` starts one on a free 127.0.0.1 port, with no persistence
(``--save "" --appendonly no``) and its files in a temporary directory, waits until it
answers ``PING``, and stops it when the block ends. Used by the budget's shared run
(:func:`benchmarks.measure.budget`) and by :mod:`benchmarks.limiter`.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from benchmarks.server import free_port, stop

#: How long redis-server may take to answer its first ``PING``.
START_SECONDS = 10.0


def find_redis_server() -> str | None:
    """The redis-server binary, or ``None`` when it is not installed."""
    return shutil.which("redis-server")


@contextlib.contextmanager
def running_redis() -> Iterator[str | None]:
    """Start a private redis-server; yield its ``redis://`` URL (``None``: not installed)."""
    binary = find_redis_server()
    if binary is None:
        yield None
        return
    with tempfile.TemporaryDirectory(prefix="twochat-bench-redis-") as tmp:
        port = free_port()
        log = Path(tmp) / "redis.log"
        proc = subprocess.Popen(  # noqa: S603 - the system's redis-server, our arguments
            [
                binary,
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                tmp,
                "--logfile",
                str(log),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            _wait_for(port, proc, log)
            yield f"redis://127.0.0.1:{port}/0"
        finally:
            stop(proc)


def _wait_for(port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    """Return once redis-server answers ``PING``; raise if it exited or took too long."""
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            err = log.read_text(errors="replace") if log.exists() else ""
            raise RuntimeError(f"redis-server exited with {proc.returncode}: {err.strip()[-500:]}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1) as sock:
            sock.sendall(b"PING\r\n")
            # "-LOADING ..." while it loads a data set (never here: no persistence).
            if sock.recv(64).startswith(b"+PONG"):
                return
        time.sleep(0.02)
    raise RuntimeError(f"redis-server did not answer PING within {START_SECONDS:.0f} s")
