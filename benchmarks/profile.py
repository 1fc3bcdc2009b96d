"""Profile one benchmarked client against the benchmark server, to see where its CPU goes.

Run from the repository root::

    python -m benchmarks.profile sdk --concurrency 64 -n 5000            # cProfile
    python -m benchmarks.profile aiohttp --concurrency 1 --pyinstrument  # pyinstrument

cProfile counts every call (so its overhead inflates many small functions; read its
``tottime`` to compare two clients, not as absolute cost); pyinstrument samples, so its
percentages are closer to the real split. Only the timed calls are profiled: the client
is built, checked and warmed up first, as in :mod:`benchmarks.run`, and glibc malloc is
pinned as there (the command starts itself again with
:data:`benchmarks.measure.PINNED_MALLOC` in its environment if they are not set).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import os
import pstats
import sys

from benchmarks.clients import ASYNC_CLIENTS, GROUP_ID, check, run_async
from benchmarks.measure import PINNED_MALLOC, child_env
from benchmarks.server import running_server


async def _profile(name: str, url: str, n: int, concurrency: int, use_pyinstrument: bool) -> str:
    async with ASYNC_CLIENTS[name](url, {}) as call:
        check(await call(GROUP_ID))
        await run_async(call, max(200, 2 * concurrency), concurrency)
        if use_pyinstrument:
            from pyinstrument import Profiler

            profiler = Profiler(interval=0.0002, async_mode="disabled")
            profiler.start()
            await run_async(call, n, concurrency)
            profiler.stop()
            return str(profiler.output_text(unicode=False, color=False, show_all=False))
        profile = cProfile.Profile()
        profile.enable()
        await run_async(call, n, concurrency)
        profile.disable()
    out = io.StringIO()
    stats = pstats.Stats(profile, stream=out)
    stats.sort_stats("tottime").print_stats(40)
    stats.sort_stats("cumulative").print_stats(40)
    return out.getvalue()


def main(argv: list[str] | None = None) -> None:
    """Print the profile of one async client's timed calls."""
    argv = sys.argv[1:] if argv is None else argv
    if any(os.environ.get(name) != value for name, value in PINNED_MALLOC.items()):
        # glibc reads these once, at start-up: only a new process can have them.
        command = [sys.executable, "-m", "benchmarks.profile", *argv]
        os.execve(sys.executable, command, child_env())  # noqa: S606 - our own module
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("client", choices=sorted(ASYNC_CLIENTS))
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("-n", type=int, default=5000)
    parser.add_argument("--pyinstrument", action="store_true", help="sample instead")
    args = parser.parse_args(argv)
    with running_server(env=child_env()) as (url, _):
        print(asyncio.run(_profile(args.client, url, args.n, args.concurrency, args.pyinstrument)))


if __name__ == "__main__":
    main()
