"""Reserve one number in each of many groups at once, on one rate-limited session.

What it shows:

- one ``TwoChatSession`` shared by many concurrent tasks (``asyncio.gather``);
- ``rate_limit=`` pacing every request of the session, so a burst of calls goes out at
  the account's pace instead of tripping 429s;
- a progress line per reservation as it lands, then every reservation cancelled, also
  when some groups failed, so nothing is left held.

Run it against the embedded fake 2Chat (no key, no network), with 10 groups at 600
requests per minute::

    python examples/many_groups.py --fake --groups 10 --rate 600

Against 2Chat, set ``TWOCHAT_API_KEY`` and name the groups:
``python examples/many_groups.py GROUP_ID [GROUP_ID ...] --rate 80`` (80 requests per
minute on paid plans, 30 on trial).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections.abc import Sequence
from typing import TextIO

from twochat_async import Reservation, TwoChatError, TwoChatSession
from twochat_async.testing import FakeGroup, FakeTwoChat


async def reserve_and_cancel(chat: TwoChatSession, group_ids: Sequence[str], out: TextIO) -> int:
    """Reserve a number in each group concurrently, then cancel every reservation.

    Returns:
        How many groups could not be reserved in.
    """
    total = len(group_ids)
    landed = 0

    async def reserve(group_id: str) -> Reservation:
        nonlocal landed
        try:
            reservation = await chat.reserve(group_id)
        except TwoChatError as exc:
            print(f"[-/{total}] failed in group {group_id}: {exc}", file=out)
            raise
        landed += 1
        print(f"[{landed}/{total}] reserved {reservation.number} in group {group_id}", file=out)
        return reservation

    started = time.monotonic()
    # return_exceptions: one failed group must not abandon the reservations of the others.
    results = await asyncio.gather(*map(reserve, group_ids), return_exceptions=True)
    elapsed = time.monotonic() - started
    reserved = [result for result in results if isinstance(result, Reservation)]
    failures = [result for result in results if not isinstance(result, Reservation)]

    cancels = await asyncio.gather(*map(chat.cancel_reservation, reserved), return_exceptions=True)
    cancelled = sum(result is None for result in cancels)
    left = len(await chat.reservations())
    print(
        f"Reserved {len(reserved)} of {total} numbers in {elapsed:.2f} s; "
        f"cancelled {cancelled}; {left} active reservations left.",
        file=out,
    )
    for failure in failures:
        if not isinstance(failure, TwoChatError):
            raise failure  # a bug (or a bad group id), not a refusal from 2Chat
    return len(failures)


def fake_groups(count: int) -> list[FakeGroup]:
    """Return ``count`` fake groups ``g-1`` ... ``g-<count>`` of three numbers each."""
    return [
        FakeGroup(id=f"g-{i}", country="US", numbers=[f"+1555{i:04d}{n:03d}" for n in range(3)])
        for i in range(1, count + 1)
    ]


async def run(args: argparse.Namespace, out: TextIO) -> int:
    """Run against the fake or 2Chat as ``args`` says; return how many groups failed."""
    if not args.fake:
        async with TwoChatSession(rate_limit=args.rate) as chat:
            return await reserve_and_cancel(chat, args.group_ids, out)
    fake = FakeTwoChat(groups=fake_groups(args.groups))
    async with (
        fake as base_url,
        TwoChatSession(fake.api_key, base_url=base_url, rate_limit=args.rate) as chat,
    ):
        return await reserve_and_cancel(chat, list(fake.groups), out)


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    """Parse ``argv``, run, and return the exit status (1 when a group failed).

    Args:
        argv: The arguments; defaults to the command line.
        out: Where to print progress; defaults to standard output.
    """
    parser = argparse.ArgumentParser(description="Reserve a number in each of many groups.")
    parser.add_argument("group_ids", nargs="*", metavar="GROUP_ID", help="groups to reserve in")
    parser.add_argument("--fake", action="store_true", help="use an embedded fake 2Chat")
    parser.add_argument("--groups", type=int, default=10, help="how many fake groups (--fake)")
    parser.add_argument("--rate", type=float, default=80, help="requests per minute (80)")
    args = parser.parse_args(argv)
    if args.fake and not 1 <= args.groups <= 1000:
        parser.error("--groups must be between 1 and 1000")
    if not args.fake and not args.group_ids:
        parser.error("name at least one GROUP_ID, or pass --fake")
    if not args.fake and not os.environ.get("TWOCHAT_API_KEY"):
        parser.error("set TWOCHAT_API_KEY, or pass --fake")
    try:
        failed = asyncio.run(run(args, out or sys.stdout))
    except (ValueError, TwoChatError) as exc:
        print(f"many_groups: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, ValueError) else 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
