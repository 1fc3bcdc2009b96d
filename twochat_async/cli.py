"""The ``twochat`` command: 2Chat's Numbers API from a shell.

The API key is read from ``TWOCHAT_API_KEY`` only, never from the command line, where it
would land in shell history and process listings. ``--fake`` runs against an embedded
:class:`~twochat_async.testing.FakeTwoChat`, so no key or network is needed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AsyncExitStack
from datetime import datetime, timedelta, timezone
from typing import Any, TextIO

import attrs

from ._session import TwoChatSession
from ._version import __version__
from .errors import TwoChatError
from .models import Reservation

__all__ = ["main"]

Command = Callable[[TwoChatSession, argparse.Namespace], Awaitable[Any]]


def _to_json(value: Any) -> Any:
    if attrs.has(type(value)):
        return {key: _to_json(item) for key, item in attrs.asdict(value, recurse=False).items()}
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, (list, tuple)):
        return [_to_json(item) for item in value]
    return value


def _when(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _duration(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds <= 0:
        return "expired"
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return "in " + (f"{hours}h {minutes:02d}m" if hours else f"{minutes}m {seconds:02d}s")


def _show_reservation(reservation: Reservation, out: TextIO) -> None:
    rows = [
        ("number", reservation.number),
        ("group", reservation.group_id or "-"),
        ("reservation", reservation.uuid),
        ("created", _when(reservation.created_at)),
        ("expires", f"{_when(reservation.expires_at)} ({_duration(reservation.expires_in())})"),
    ]
    for label, value in rows:
        print(f"{label:<12} {value}", file=out)


async def _reserve(chat: TwoChatSession, args: argparse.Namespace) -> Reservation:
    return await chat.reserve(args.group_id, number=args.number)


#: subcommand -> (call, human-readable printer)
COMMANDS: dict[str, tuple[Command, Callable[[Any, TextIO], None]]] = {
    "reserve": (_reserve, _show_reservation),
}


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of the ``twochat`` command."""
    parser = argparse.ArgumentParser(
        prog="twochat",
        description="2Chat's Numbers API from the command line. "
        "The API key is read from the TWOCHAT_API_KEY environment variable.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "--fake",
        action="store_true",
        help="run against an embedded fake 2Chat (no key, no network; state lasts one run)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON value, for scripts")
    parser.add_argument(
        "--base-url", help="the API address (default: TWOCHAT_BASE_URL or https://api.p.2chat.io)"
    )
    parser.add_argument(
        "--timeout", type=float, default=30.0, help="seconds per request (default: 30)"
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    reserve = commands.add_parser("reserve", help="reserve a number of a group")
    reserve.add_argument("group_id", metavar="GROUP_ID", help="the number group's id")
    reserve.add_argument("--number", help="a specific number of the group, in E.164")
    return parser


async def run(args: argparse.Namespace, out: TextIO) -> None:
    """Run the parsed command and print its result to ``out``."""
    call, show = COMMANDS[args.command]
    async with AsyncExitStack() as stack:
        if args.fake:
            from .testing import FakeTwoChat

            fake = FakeTwoChat()
            base_url = await stack.enter_async_context(fake)
            chat = TwoChatSession(fake.api_key, base_url=base_url, timeout=args.timeout)
        else:
            chat = TwoChatSession(base_url=args.base_url, timeout=args.timeout)
        await stack.enter_async_context(chat)
        result = await call(chat, args)
    if args.json:
        print(json.dumps(_to_json(result), indent=2), file=out)
    else:
        show(result, out)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``twochat`` command; return its exit status (0 ok, 1 failed, 2 bad usage)."""
    args = build_parser().parse_args(argv)
    try:
        asyncio.run(run(args, sys.stdout))
    except ValueError as exc:
        print(f"twochat: error: {exc}", file=sys.stderr)
        return 2
    except TwoChatError as exc:
        print(f"twochat: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("twochat: interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
