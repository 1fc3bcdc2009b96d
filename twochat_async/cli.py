"""The ``twochat`` command: 2Chat's Numbers API from a shell.

The API key is read from ``TWOCHAT_API_KEY`` only, never from the command line, where it
would land in shell history and process listings. ``--fake`` runs against an embedded
`twochat_async.testing.FakeTwoChat`, so no key or network is needed.

Everything the command prints goes through `_write`, which escapes control characters
(`twochat_async.errors.escape_controls`): a server's text cannot move the cursor, erase a
line, write the clipboard or forge a line of output. ``--json`` prints strict JSON,
ASCII only (non-finite numbers as ``null``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import sys
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AsyncExitStack
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, TextIO

import attrs

from ._session import API_KEY_ENV, TwoChatSession
from ._version import __version__
from ._wire import ArgumentError
from .errors import TwoChatError, escape_controls
from .models import Purchase, Reservation

__all__ = ["main"]

#: What a subcommand does: a call of the session with the parsed arguments.
Command = Callable[[TwoChatSession, argparse.Namespace], Awaitable[Any]]
#: How a subcommand's result is printed without ``--json``.
Printer = Callable[[Any, TextIO], None]


def _write(out: TextIO, line: str, *, end: str = "\n") -> None:
    """Print ``line``: the one way the command writes, control characters escaped.

    Characters ``out``'s encoding cannot hold are written as escapes too, so a city name
    on an ASCII terminal is not an error.
    """
    text = escape_controls(line)
    encoding = getattr(out, "encoding", None)
    if encoding and not text.isascii():
        text = text.encode(encoding, "backslashreplace").decode(encoding)
    print(text, end=end, file=out)


def _to_json(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None  # JSON has no NaN or Infinity
    if attrs.has(type(value)):
        return {key: _to_json(item) for key, item in attrs.asdict(value, recurse=False).items()}
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, (Decimal, timedelta)):
        return str(value)
    if isinstance(value, (list, tuple, frozenset)):
        items = [_to_json(item) for item in value]
        return sorted(items) if isinstance(value, frozenset) else items
    if isinstance(value, Mapping):
        return {key: _to_json(item) for key, item in value.items()}
    return value


def _dumps(value: Any, indent: int | None = None) -> str:
    """Return ``value`` as strict JSON text, ASCII only: what `_to_json` makes of it."""
    return json.dumps(_to_json(value), indent=indent, allow_nan=False)


def _text(value: Any) -> str:
    """Return how a value is shown in a table or record: escaped, so its width is its own."""
    return escape_controls(_plain(value))


def _plain(value: Any) -> str:
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    if isinstance(value, frozenset):
        return ",".join(sorted(value)) or "-"
    if isinstance(value, (tuple, list)):
        return f"{len(value)} item(s)" if value else "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, Mapping):
        return _dumps(value)
    return "-" if value is None else str(value)


def _duration(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds <= 0:
        return "expired"
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return "in " + (f"{hours}h {minutes:02d}m" if hours else f"{minutes}m {seconds:02d}s")


def _show_record(record: Any, out: TextIO) -> None:
    """Print a record as ``label value`` lines."""
    values = attrs.asdict(record, recurse=False)
    width = max(map(len, values))
    for label, value in values.items():
        _write(out, f"{label:<{width}}  {_text(value)}")


def _show_reservation(reservation: Reservation, out: TextIO) -> None:
    rows = [
        ("number", reservation.number),
        ("group", reservation.group_id or "-"),
        ("reservation", reservation.uuid),
        ("created", _text(reservation.created_at)),
        ("expires", f"{_text(reservation.expires_at)} ({_duration(reservation.expires_in())})"),
    ]
    for label, value in rows:
        _write(out, f"{label:<12} {value}")


def _show_table(records: Sequence[Any], out: TextIO) -> None:
    """Print records as a table with one column per field."""
    if not records:
        _write(out, "(none)")
        return
    if attrs.has(type(records[0])):
        columns = [field.name for field in attrs.fields(type(records[0]))]
        rows = [[_text(getattr(record, name)) for name in columns] for record in records]
    else:  # free-form mappings (requirements): one column per key seen
        columns = list(dict.fromkeys(key for record in records for key in record))
        rows = [[_text(_to_json(record.get(name))) for name in columns] for record in records]
    header = [_text(name) for name in columns]  # free-form keys are 2Chat's text too
    widths = [max(len(cell) for cell in column) for column in zip(header, *rows, strict=True)]
    for line in [header, *rows]:
        cells = (cell.ljust(width) for cell, width in zip(line, widths, strict=True))
        _write(out, "  ".join(cells).rstrip())


def _show_done(message: str, out: TextIO) -> None:
    _write(out, message)


async def _cancel(chat: TwoChatSession, args: argparse.Namespace) -> str:
    await chat.cancel_reservation(args.uuid)
    return f"Cancelled reservation {args.uuid}"


async def _demo(chat: TwoChatSession, args: argparse.Namespace) -> list[str]:
    """Walk the number lifecycle: search, reserve, look at the expiry, cancel."""
    groups = await chat.groups(args.country, did_type="local")
    if not groups:
        return [f"No local number groups in {args.country}."]
    group = groups[0]
    reservation = await chat.reserve(group.id)
    lines = [
        f"1. Found {len(groups)} local group(s) in {args.country}; using {group.id} "
        f"({group.location}, {group.prefix}, {group.monthly_price}/month).",
        f"2. Reserved {reservation.number} as {reservation.uuid}.",
        f"3. It expires at {_text(reservation.expires_at)} "
        f"({_duration(reservation.expires_in())}): purchase it before then or cancel it.",
    ]
    await chat.cancel_reservation(reservation)
    active = await chat.reservations()
    lines.append(f"4. Cancelled it; {len(active)} active reservation(s) left.")
    return lines


async def _purchase(chat: TwoChatSession, args: argparse.Namespace) -> Purchase:
    purchase = await chat.purchase(args.group_id, args.number)
    if purchase.number is not None:
        return purchase
    # 2Chat picked the number: its answer is undocumented, so the number is looked for
    # where the fake (and, as far as is known, 2Chat) puts it; None if it is not there.
    data = purchase.details.get("data")
    found = data.get("number") if isinstance(data, Mapping) else None
    return attrs.evolve(purchase, number=found if isinstance(found, str) else None)


def _show_purchase(purchase: Purchase, out: TextIO) -> None:
    number = purchase.number or "unknown: 2Chat's answer does not say (see details)"
    rows = [("group_id", purchase.group_id), ("number", number), ("details", purchase.details)]
    for label, value in rows:
        _write(out, f"{label:<8}  {_text(value)}")


def _show_lines(lines: list[str], out: TextIO) -> None:
    for line in lines:
        _write(out, line)


#: subcommand -> (call, human-readable printer)
COMMANDS: dict[str, tuple[Command, Printer]] = {
    "regions": (lambda chat, args: chat.regions(args.country), _show_table),
    "cities": (
        lambda chat, args: chat.cities(args.country, region_id=args.region_id),
        _show_table,
    ),
    "did-types": (lambda chat, args: chat.did_types(), _show_table),
    "groups": (
        lambda chat, args: chat.groups(
            args.country,
            region_id=args.region_id,
            city_id=args.city_id,
            city_name_or_prefix=args.city,
            did_type=args.did_type,
        ),
        _show_table,
    ),
    "available": (
        lambda chat, args: chat.available_numbers(args.group_id, number_contains=args.contains),
        _show_table,
    ),
    "requirements": (
        lambda chat, args: chat.requirements(args.country, did_type=args.did_type),
        _show_table,
    ),
    "reserve": (lambda chat, args: chat.reserve(args.group_id, args.number), _show_reservation),
    "reservations": (lambda chat, args: chat.reservations(), _show_table),
    "cancel": (_cancel, _show_done),
    "purchase": (_purchase, _show_purchase),
    "info": (lambda chat, args: chat.info(), _show_record),
    "demo": (_demo, _show_lines),
}


def _global_options(*, defaults: bool) -> argparse.ArgumentParser:
    """Return the options every position accepts: before the subcommand or after it.

    The subcommands' copies default to ``SUPPRESS``, so that an option given before the
    subcommand is not reset by the subcommand's parser when it is not repeated there.
    """
    options = argparse.ArgumentParser(add_help=False)

    def default(value: Any) -> Any:
        return value if defaults else argparse.SUPPRESS

    group = options.add_argument_group("global options (before or after COMMAND)")
    group.add_argument(
        "--fake",
        action="store_true",
        default=default(False),
        help="run against an embedded fake 2Chat (no key, no network; state lasts one run)",
    )
    group.add_argument(
        "--json", action="store_true", default=default(False), help="print one JSON value"
    )
    group.add_argument(
        "--base-url",
        default=default(None),
        help="the API address (default: TWOCHAT_BASE_URL or https://api.p.2chat.io)",
    )
    group.add_argument(
        "--timeout",
        type=float,
        default=default(30.0),
        help="seconds per request (default: 30)",
    )
    group.add_argument(
        "--proxy",
        default=default(None),
        help="an http:// proxy for every request (default: HTTPS_PROXY/HTTP_PROXY, NO_PROXY)",
    )
    group.add_argument(
        "--allow-insecure-http",
        action="store_true",
        default=default(False),
        help="allow a plain http:// --base-url to another machine (the key travels in clear)",
    )
    return options


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of the ``twochat`` command."""
    parser = argparse.ArgumentParser(
        prog="twochat",
        description="2Chat's Numbers API from the command line. "
        "The API key is read from the TWOCHAT_API_KEY environment variable.",
        parents=[_global_options(defaults=True)],
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    shared = _global_options(defaults=False)

    def add(name: str, **kwargs: Any) -> argparse.ArgumentParser:
        return commands.add_parser(name, parents=[shared], **kwargs)

    add("regions", help="list a country's regions").add_argument("country", metavar="COUNTRY")
    cities = add("cities", help="list a country's cities")
    cities.add_argument("country", metavar="COUNTRY")
    cities.add_argument("--region-id", type=int, help="only the cities of this region")
    add("did-types", help="list the kinds of number (DID types)")
    groups = add("groups", help="search a country's number groups")
    groups.add_argument("country", metavar="COUNTRY", help="ISO 3166 alpha-2 code, e.g. US")
    groups.add_argument("--region-id", type=int, help="a region id (2Chat needs one for US)")
    groups.add_argument("--city-id", type=int, help="a city id")
    groups.add_argument("--city", help="a city name or number prefix")
    groups.add_argument("--did-type", help="local, mobile, tollfree, national, global, ...")
    available = add("available", help="list the numbers of a group that can be picked")
    available.add_argument("group_id", metavar="GROUP_ID")
    available.add_argument("--contains", help="digits the numbers must contain")
    requirements = add("requirements", help="list what a country requires to buy numbers")
    requirements.add_argument("country", metavar="COUNTRY")
    requirements.add_argument("--did-type", type=int, help="a DID type id from did-types")
    reserve = add("reserve", help="reserve a number of a group")
    reserve.add_argument("group_id", metavar="GROUP_ID", help="the number group's id")
    reserve.add_argument("--number", help="a specific number of the group, in E.164")
    add("reservations", help="list the active reservations")
    add("cancel", help="cancel a reservation").add_argument("uuid", metavar="UUID")
    purchase = add("purchase", help="buy a number of a group (this costs money)")
    purchase.add_argument("group_id", metavar="GROUP_ID")
    purchase.add_argument("--number", help="the number to buy, e.g. a reserved one")
    purchase.add_argument(
        "-y", "--yes", action="store_true", help="buy without asking (needed without a terminal)"
    )
    add("info", help="show the account, its rate limit and usage")
    demo = add("demo", help="search, reserve, show the expiry and cancel, in one run")
    demo.add_argument("country", metavar="COUNTRY", nargs="?", default="US")
    from .testing._server import add_arguments

    add_arguments(
        commands.add_parser(
            "fake-server",
            help="serve a fake 2Chat until interrupted, for other processes "
            "(prints TWOCHAT_BASE_URL and TWOCHAT_API_KEY)",
        )
    )
    return parser


#: How the command line spells the arguments an `ArgumentError` names.
_OPTION_NAMES = {
    "api_key": "TWOCHAT_API_KEY",
    "base_url": "--base-url (or TWOCHAT_BASE_URL)",
    "timeout": "--timeout",
    "proxy": "--proxy",
    "allow_insecure_http": "--allow-insecure-http",
    "country": "COUNTRY",
    "group_id": "GROUP_ID",
    "number": "--number",
    "number_contains": "--contains",
    "region_id": "--region-id",
    "city_id": "--city-id",
    "city_name_or_prefix": "--city",
    "did_type": "--did-type",
    "reservation uuid": "UUID",
}


def _session(args: argparse.Namespace, api_key: str | None, base_url: str | None) -> TwoChatSession:
    """Return the session the options ask for."""
    if api_key is None and not os.environ.get(API_KEY_ENV):
        raise ValueError(
            f"No 2Chat API key: set the {API_KEY_ENV} environment variable "
            "(or try --fake, which needs none)."
        )
    return TwoChatSession(
        api_key,
        base_url=base_url,
        timeout=args.timeout,
        proxy=args.proxy,
        # The fake is in this process: the environment's proxies are not for it.
        trust_env=not args.fake,
        allow_insecure_http=args.allow_insecure_http,
    )


async def run(args: argparse.Namespace, out: TextIO) -> None:
    """Run the parsed command and print its result to ``out``."""
    call, show = COMMANDS[args.command]
    async with AsyncExitStack() as stack:
        if args.fake:
            from .testing import FakeTwoChat

            fake = FakeTwoChat()
            base_url = await stack.enter_async_context(fake)
            chat = _session(args, fake.api_key, base_url)
        else:
            chat = _session(args, None, args.base_url)
        await stack.enter_async_context(chat)
        result = await call(chat, args)
    if args.json:
        for line in _dumps(result, indent=2).splitlines():
            _write(out, line)
    else:
        show(result, out)


def _refused_purchase(args: argparse.Namespace) -> int | None:
    """Ask before a purchase that spends money; return the exit status if it must not run.

    Only on a terminal: a script without ``--yes`` is refused (exit 2) rather than left
    waiting for an answer nobody gives. ``--fake`` buys nothing real and never asks.
    """
    if args.command != "purchase" or args.yes or args.fake:
        return None
    if not sys.stdin.isatty():
        _write(
            sys.stderr,
            "twochat: error: purchase spends money: pass --yes to buy without a terminal to "
            "confirm on; nothing was bought",
        )
        return 2
    what = args.number or "a random number"
    _write(sys.stderr, f"Buy {what} from group {args.group_id}? It costs money. [y/N] ", end="")
    sys.stderr.flush()
    if sys.stdin.readline().strip().lower() not in ("y", "yes"):
        _write(sys.stderr, "twochat: not confirmed; nothing was bought")
        return 1
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``twochat`` command; return its exit status (0 ok, 1 failed, 2 bad usage)."""
    args = build_parser().parse_args(argv)
    if args.command == "fake-server":
        from .testing._server import run as serve

        return serve(args.host, args.port)
    refused = _refused_purchase(args)
    if refused is not None:
        return refused
    try:
        asyncio.run(run(args, sys.stdout))
    except ValueError as exc:
        text = exc.words(_OPTION_NAMES) if isinstance(exc, ArgumentError) else str(exc)
        _write(sys.stderr, f"twochat: error: {text}")
        return 2
    except TwoChatError as exc:
        _write(sys.stderr, f"twochat: {type(exc).__name__}: {exc}")
        return 1
    except KeyboardInterrupt:
        _write(sys.stderr, "twochat: interrupted")
        return 130
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
