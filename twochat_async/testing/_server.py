"""The fake as a standalone server: ``twochat fake-server`` and ``python -m twochat_async.testing``.

For code in other processes, other languages or containers: it prints the two variables
that point a client at it, ready to ``export``, then serves until SIGINT or SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from collections.abc import Sequence
from typing import TextIO

from ._fake import FakeTwoChat


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the server's ``--host`` and ``--port`` options to ``parser``; return it."""
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="the IPv4 address to listen on (default: 127.0.0.1; 0.0.0.0 for other machines)",
    )
    parser.add_argument(
        "--port", type=int, default=0, help="the port to listen on (default: 0, a free one)"
    )
    return parser


async def serve(host: str, port: int, out: TextIO) -> None:
    """Serve a `FakeTwoChat` until SIGINT or SIGTERM, after printing how to reach it.

    Args:
        host: The address to listen on.
        port: The port to listen on; 0 picks a free one.
        out: Where the ``TWOCHAT_BASE_URL=...`` and ``TWOCHAT_API_KEY=...`` lines go.
    """
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    signals = (signal.SIGINT, signal.SIGTERM)
    for number in signals:
        # Not on Windows' loops: there Ctrl-C raises KeyboardInterrupt instead.
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(number, stop.set)
    fake = FakeTwoChat(host=host, port=port)
    try:
        async with fake as base_url:
            print(f"TWOCHAT_BASE_URL={base_url}", file=out)
            print(f"TWOCHAT_API_KEY={fake.api_key}", file=out)
            # Flushed now: a reader waits for these lines before it starts its client.
            out.flush()
            await stop.wait()
    finally:
        for number in signals:
            with contextlib.suppress(NotImplementedError):
                loop.remove_signal_handler(number)


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
