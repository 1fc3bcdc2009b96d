"""The fake as a standalone server: ``twochat fake-server`` and ``python -m twochat_async.testing``.

For code in other processes, other languages or containers: it prints the two variables
that point a client at it, ready to ``export``, then serves until SIGINT or SIGTERM.
It may serve for weeks, so it keeps only the latest `KEPT_REQUESTS` requests in its log.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from collections.abc import Sequence
from typing import TextIO

#: How many of the latest requests the server's fake keeps (`FakeTwoChat.requests`): its
#: memory stays bounded however long it serves (each entry holds a body of up to 1 MiB).
KEPT_REQUESTS = 100


def port_number(text: str) -> int:
    """Return the port ``text`` names, or raise ``argparse.ArgumentTypeError`` saying why not."""
    try:
        number = int(text)
    except ValueError:
        number = -1
    if not 0 <= number <= 65535:
        raise argparse.ArgumentTypeError(f"must be a port number from 0 to 65535, got {text!r}")
    return number


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the server's ``--host`` and ``--port`` options to ``parser``; return it.

    This module imports the fake (and aiohttp) only to serve, so that ``twochat --help``
    builds its parser without them.
    """
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="the IPv4 address to listen on (default: 127.0.0.1; 0.0.0.0 for other machines)",
    )
    parser.add_argument(
        "--port", type=port_number, default=0, help="the port to listen on (default: 0, a free one)"
    )
    return parser


async def serve(host: str, port: int, out: TextIO) -> None:
    """Serve a `FakeTwoChat` until SIGINT or SIGTERM, after printing how to reach it.

    On ``0.0.0.0`` the base URL printed is ``http://127.0.0.1:PORT``, which the SDK
    accepts; a line on stderr says how other machines reach it.

    Args:
        host: The address to listen on.
        port: The port to listen on; 0 picks a free one.
        out: Where the ``TWOCHAT_BASE_URL=...`` and ``TWOCHAT_API_KEY=...`` lines go.
    """
    from ._fake import FakeTwoChat

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    signals = (signal.SIGINT, signal.SIGTERM)
    for number in signals:
        # Not on Windows' loops: there Ctrl-C raises KeyboardInterrupt instead.
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(number, stop.set)
    fake = FakeTwoChat(host=host, port=port, keep_requests=KEPT_REQUESTS)
    try:
        async with fake as base_url:
            print(f"TWOCHAT_BASE_URL={base_url}", file=out)
            print(f"TWOCHAT_API_KEY={fake.api_key}", file=out)
            # Flushed now: a reader waits for these lines before it starts its client.
            out.flush()
            _tell_the_way_in(host, base_url)
            await stop.wait()
    finally:
        for number in signals:
            with contextlib.suppress(NotImplementedError):
                loop.remove_signal_handler(number)


def _tell_the_way_in(host: str, base_url: str) -> None:
    """Say on stderr how other machines reach a server that listens beyond loopback."""
    from .._wire import is_loopback

    port = base_url.rsplit(":", 1)[1]
    if base_url != f"http://{host}:{port}":  # 0.0.0.0: TWOCHAT_BASE_URL names 127.0.0.1
        where = f"every interface: other machines use http://<this host's address>:{port}"
    elif is_loopback(host):
        return
    else:
        where = host
    print(
        f"fake-server: listening on {where}; plain http, so a client there passes "
        "allow_insecure_http=True (twochat --allow-insecure-http).",
        file=sys.stderr,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``python -m twochat_async.testing``; return its exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m twochat_async.testing",
        description="Serve a fake 2Chat until interrupted; print how to reach it first.",
    )
    args = add_arguments(parser).parse_args(argv)
    return run(args.host, args.port)


def run(host: str, port: int) -> int:
    """Serve until interrupted; return the exit status (0, or 1 if it cannot listen)."""
    try:
        asyncio.run(serve(host, port, sys.stdout))
    except OSError as exc:  # the address is taken, or not this machine's
        print(
            f"fake-server: cannot listen on {host}:{port}: {exc.strerror or exc}", file=sys.stderr
        )
        return 1
    except KeyboardInterrupt:  # where no signal handler could be installed
        pass
    return 0
