"""A long-running worker that offers numbers to a user and buys the ones they accept.

What it shows:

- ``async with chat.hold(group)`` in a loop: each round reserves a number, offers it, and
  waits for the user's answer; "yes" purchases it, and anything else ("no", no answer in
  time, or a shutdown) leaves the block, where ``hold()`` cancels the reservation;
- a clean shutdown on SIGINT or SIGTERM: the signal only sets an ``asyncio.Event``, the
  round in progress stops waiting, and the hold it had open is released on the way out;
- a failed round (2Chat refused or could not be reached) logged and retried after a
  pause, without ending the worker.

The user is simulated: answers arrive on an ``asyncio.Queue``, as they would from a chat
webhook. Run it against the embedded fake 2Chat (no key, no network), and stop it with
Ctrl+C, or give it a number of rounds::

    python examples/bot.py --fake --rounds 5

Against 2Chat, set ``TWOCHAT_API_KEY`` and name a group:
``python examples/bot.py GROUP_ID`` (it buys numbers: each "yes" costs money).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import sys
from asyncio import FIRST_COMPLETED
from collections.abc import Callable, Sequence
from contextlib import AsyncExitStack, suppress
from dataclasses import dataclass
from typing import TextIO

from twochat_async import Reservation, TwoChatError, TwoChatSession
from twochat_async.testing import FakeTwoChat

#: Called with each reservation offered; a real bot sends the number to its user here.
Offer = Callable[[Reservation], object]


@dataclass
class Tally:
    """What the worker did."""

    rounds: int = 0
    bought: int = 0
    released: int = 0
    failed: int = 0


async def next_answer(answers: asyncio.Queue[str], stop: asyncio.Event, timeout: float) -> str:
    """Return the user's next answer, ``"timeout"``, or ``"stopping"`` once ``stop`` is set."""
    getting = asyncio.ensure_future(answers.get())
    stopping = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({getting, stopping}, timeout=timeout, return_when=FIRST_COMPLETED)
    finally:
        getting.cancel()  # an answer not yet taken stays in the queue
        stopping.cancel()
        await asyncio.gather(getting, stopping, return_exceptions=True)
    if stop.is_set():
        return "stopping"
    return getting.result() if not getting.cancelled() else "timeout"


async def offer_one(
    chat: TwoChatSession,
    group_id: str,
    answers: asyncio.Queue[str],
    stop: asyncio.Event,
    *,
    answer_timeout: float,
    offer: Offer | None,
    tally: Tally,
    out: TextIO,
) -> None:
    """Hold a number of the group, offer it, and buy it if the answer is yes."""
    async with chat.hold(group_id) as hold:
        number = hold.reservation.number
        _say(out, f"offering {number} (held until {hold.reservation.expires_at:%H:%M:%S} UTC)")
        if offer is not None:
            offer(hold.reservation)
        answer = await next_answer(answers, stop, answer_timeout)
        if answer == "yes":
            await hold.purchase()
            tally.bought += 1
            _say(out, f"bought {number}")
            return
    # Leaving the block cancelled the reservation.
    tally.released += 1
    _say(out, f"released {number} ({answer})")


async def run(
    chat: TwoChatSession,
    group_id: str,
    answers: asyncio.Queue[str],
    stop: asyncio.Event,
    *,
    rounds: int | None = None,
    answer_timeout: float = 30.0,
    retry_delay: float = 5.0,
    offer: Offer | None = None,
    out: TextIO | None = None,
) -> Tally:
    """Offer numbers of a group one at a time until ``stop`` is set or ``rounds`` are done.

    Args:
        chat: The session to use.
        group_id: The group to offer numbers of.
        answers: The user's answers, in order: ``"yes"`` buys the number on offer.
        stop: Set it to stop; the number on offer is released.
        rounds: How many numbers to offer (failed rounds count); ``None``: no end.
        answer_timeout: Seconds to wait for an answer before releasing the number.
        retry_delay: Seconds to wait after a failed round.
        offer: Called with each reservation as it is offered.
        out: Where to print what happens; defaults to standard output.

    Returns:
        What was done.
    """
    out = out or sys.stdout
    tally = Tally()
    while not stop.is_set() and (rounds is None or tally.rounds < rounds):
        tally.rounds += 1
        try:
            await offer_one(
                chat,
                group_id,
                answers,
                stop,
                answer_timeout=answer_timeout,
                offer=offer,
                tally=tally,
                out=out,
            )
        except TwoChatError as exc:
            tally.failed += 1
            _say(out, f"round {tally.rounds} failed: {exc}; retrying in {retry_delay:g} s")
            with suppress(TimeoutError, asyncio.TimeoutError):  # the same class from 3.11
                await asyncio.wait_for(stop.wait(), retry_delay)
    _say(
        out,
        f"Stopped after {tally.rounds} round(s): {tally.bought} bought, "
        f"{tally.released} released, {tally.failed} failed.",
    )
    return tally


def simulated_user(answers: asyncio.Queue[str], rng: random.Random) -> Offer:
    """Return an ``offer`` callback that answers like a person: no, yes, or never."""
    loop = asyncio.get_running_loop()

    def receive(reservation: Reservation) -> None:
        answer = rng.choice(["yes", "no", "no", None])
        if answer is not None:  # None: the user never answers, and the offer times out
            loop.call_later(rng.uniform(0.05, 0.3), answers.put_nowait, answer)

    return receive


def _say(out: TextIO, line: str) -> None:
    print(line, file=out, flush=True)


async def main_async(args: argparse.Namespace, out: TextIO) -> Tally:
    """Run the worker until SIGINT/SIGTERM or ``--rounds``, against 2Chat or the fake."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        # Not on Windows: there Ctrl+C cancels the task, and hold() still releases.
        with suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    answers: asyncio.Queue[str] = asyncio.Queue()
    async with AsyncExitStack() as stack:
        if args.fake:
            fake = FakeTwoChat()
            base_url = await stack.enter_async_context(fake)
            chat = TwoChatSession(fake.api_key, base_url=base_url)
            offer: Offer | None = simulated_user(answers, random.Random())  # noqa: S311 - a simulation
        else:
            chat = TwoChatSession()
            offer = None  # wire your messaging here, and feed the answers queue
        await stack.enter_async_context(chat)
        return await run(
            chat,
            args.group_id,
            answers,
            stop,
            rounds=args.rounds,
            answer_timeout=args.answer_timeout or (1.0 if args.fake else 30.0),
            retry_delay=1.0 if args.fake else 5.0,
            offer=offer,
            out=out,
        )


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    """Parse ``argv`` and run the worker; return the exit status.

    Args:
        argv: The arguments; defaults to the command line.
        out: Where to print what happens; defaults to standard output.
    """
    parser = argparse.ArgumentParser(description="Offer 2Chat numbers to a (simulated) user.")
    parser.add_argument("group_id", nargs="?", metavar="GROUP_ID", help="the group to offer")
    parser.add_argument("--fake", action="store_true", help="use an embedded fake 2Chat")
    parser.add_argument("--rounds", type=int, help="stop after this many rounds")
    parser.add_argument(
        "--answer-timeout", type=float, help="seconds to wait for an answer (30; --fake: 1)"
    )
    args = parser.parse_args(argv)
    if args.fake:
        args.group_id = args.group_id or "abc-123"
    elif not args.group_id:
        parser.error("name a GROUP_ID, or pass --fake")
    elif not os.environ.get("TWOCHAT_API_KEY"):
        parser.error("set TWOCHAT_API_KEY, or pass --fake")
    try:
        asyncio.run(main_async(args, out or sys.stdout))
    except ValueError as exc:
        print(f"bot: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
