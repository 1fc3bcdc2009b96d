"""nginx as a native-speed benchmark server, when it is installed (Debian: ``nginx``).

:func:`running_nginx` starts a private nginx on a free 127.0.0.1 port with a temporary
configuration that answers ``POST /open/numbers/reservations`` with the same canned 201
body as :mod:`benchmarks.server` (``return 201``: nginx refuses POST to a static file),
and ``GET /__stats`` with zeros: its CPU is not measured.
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

from benchmarks.server import RESERVE_BODY, RESERVE_PATH, STATS_PATH, free_port, stop

CONFIG = """\
daemon off;
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 16384; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    keepalive_requests 10000000;
    keepalive_timeout 120s;
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        default_type application/json;
        location = {reserve} {{ return 201 '{body}'; }}
        location = {stats} {{ return 200 '{{"cpu_s":0,"requests":0}}'; }}
    }}
}}
"""


def find_nginx() -> str | None:
    """The nginx binary, or ``None`` when it is not installed."""
    return shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if Path(p).exists()), None
    )


@contextlib.contextmanager
def running_nginx() -> Iterator[str | None]:
    """Start a private nginx; yield its base URL (``None`` when nginx is not installed)."""
    binary = find_nginx()
    if binary is None:
        yield None
        return
    with tempfile.TemporaryDirectory(prefix="twochat-bench-nginx-") as tmp:
        port = free_port()
        config = Path(tmp) / "nginx.conf"
        config.write_text(
            CONFIG.format(
                dir=tmp,
                port=port,
                reserve=RESERVE_PATH.decode(),
                stats=STATS_PATH.decode(),
                body=RESERVE_BODY.decode(),
            )
        )
        proc = subprocess.Popen(  # noqa: S603 - the system's nginx, our configuration
            [binary, "-p", tmp, "-c", str(config), "-e", f"{tmp}/error.log"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            _wait_for(port, proc)
            yield f"http://127.0.0.1:{port}"
        finally:
            stop(proc)


def _wait_for(port: int, proc: subprocess.Popen[bytes]) -> None:
    """Return once nginx accepts connections; raise if it exited or took 10 s."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
            raise RuntimeError(f"nginx exited with {proc.returncode}: {err.strip()[-500:]}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
            return
        time.sleep(0.05)
    raise RuntimeError("nginx did not start listening within 10 s")
