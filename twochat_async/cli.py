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
import contextlib
import json
import math
import os
import signal
import sys
import textwrap
import threading
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AsyncExitStack
from datetime import datetime, timedelta, timezone
from operator import attrgetter
from typing import TYPE_CHECKING, Any, NoReturn, TextIO

import attrs

from ._version import __version__
from .errors import TwoChatError, escape_controls

if TYPE_CHECKING:
    # Imported where they are used: `twochat --help` and `--version` then load neither
    # aiohttp nor the fake (a third of a second before anything is printed).
    from ._session import TwoChatSession
    from .models import NumberGroup, Purchase, Reservation

__all__ = ["main"]

#: What a subcommand does: a call of the session with the parsed arguments.
Command = Callable[["TwoChatSession", argparse.Namespace], Awaitable[Any]]
#: How a subcommand's result is printed without ``--json``.
Printer = Callable[[Any, TextIO], None]
#: A table's column: its header, and how a record gives its cell.
Column = tuple[str, Callable[[Any], Any]]

#: How wide a table may be; a wider one wraps its widest cells, then drops columns.
TABLE_WIDTH = 100
#: Between two columns of a table.
GAP = "  "
#: The exit status of a command whose reader closed the pipe: killed by SIGPIPE, as
#: shells count it (128 + 13), so ``set -o pipefail`` sees what it sees of ``yes | head``.
EXIT_BROKEN_PIPE = 141


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
    """Return ``value`` as JSON's built-ins: a record as its `to_dict()` (the SDK's one
    conversion), a non-finite number as ``null``."""
    from .models import Record  # loaded by then: only answers are printed as JSON

    if isinstance(value, Record):
        value = value.to_dict()
    if isinstance(value, float) and not math.isfinite(value):
        return None  # JSON has no NaN or Infinity
    if isinstance(value, (list, tuple)):
        return [_to_json(item) for item in value]
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
    """Return a duration as people read it, to the second: ``1h 2m``, ``59m 59s``, ``5s``."""
    hours, rest = divmod(int(delta.total_seconds()), 3600)
    minutes, seconds = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes}m"
    return f"{minutes}m {seconds}s" if minutes else f"{seconds}s"


def _left(reservation: Reservation) -> str:
    """Return how long a reservation still holds its number: ``59m 59s``, or ``expired``."""
    delta = reservation.expires_in()
    return _duration(delta) if delta.total_seconds() >= 1 else "expired"


def _expiry(reservation: Reservation) -> str:
    """Return when a reservation expires, and in how long: ``... UTC (in 59m 59s)``."""
    left = _left(reservation)
    when = left if left == "expired" else f"in {left}"
    return f"{_text(reservation.expires_at)} ({when})"


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
        ("expires", _expiry(reservation)),
    ]
    for label, value in rows:
        _write(out, f"{label:<12} {value}")


def _columns(kind: type) -> list[Column]:
    """Return the columns of a table of ``kind`` records: a field each, unless chosen here.

    Groups and reservations have more fields than 100 columns hold: their tables show
    the ones to choose by, under short headers (``--json`` has every field).
    """
    from .models import NumberGroup, Reservation

    if kind is NumberGroup:
        return [
            *((name, attrgetter(name)) for name in ("id", "prefix", "location", "type")),
            ("setup", attrgetter("setup_price")),
            ("monthly", attrgetter("monthly_price")),
            ("requires", lambda group: len(group.requirements) or "-"),
            ("pick", attrgetter("allow_number_selection")),
            ("features", lambda group: ", ".join(sorted(group.features)) or "-"),
        ]
    if kind is Reservation:
        return [
            ("uuid", attrgetter("uuid")),
            ("number", attrgetter("number")),
            ("group", attrgetter("group_id")),
            ("expires", attrgetter("expires_at")),
            ("left", _left),
        ]
    return [(field.name, attrgetter(field.name)) for field in attrs.fields(kind)]


def _show_table(records: Sequence[Any], out: TextIO) -> None:
    """Print records as a table, `TABLE_WIDTH` columns at most."""
    if not records:
        _write(out, "(none)")
        return
    if attrs.has(type(records[0])):
        columns = _columns(type(records[0]))
        header = [name for name, _ in columns]
        rows = [[_text(cell(record)) for _, cell in columns] for record in records]
    else:  # free-form mappings (requirements): one column per key seen
        keys = list(dict.fromkeys(key for record in records for key in record))
        header = [_text(key) for key in keys]  # free-form keys are 2Chat's text too
        rows = [[_text(_to_json(record.get(key))) for key in keys] for record in records]
    widths = _fit([header, *rows], TABLE_WIDTH)
    for line in [header, *rows]:
        for text in _wrapped(line[: len(widths)], widths):
            _write(out, text)
    if len(widths) < len(header):
        left_out = ", ".join(header[len(widths) :])
        note = f"({left_out} left out to fit {TABLE_WIDTH} columns; --json shows all)"
        for piece in textwrap.wrap(note, TABLE_WIDTH):
            _write(out, piece)


def _fit(lines: list[list[str]], limit: int) -> list[int]:
    """Return the widths of the columns that fit ``limit``: the widest narrowed first.

    A column is narrowed down to its header's width (at least 8): below that, the last
    columns are left out.
    """
    natural = [max(map(len, column)) for column in zip(*lines, strict=True)]
    floors = [min(width, max(len(lines[0][n]), 8)) for n, width in enumerate(natural)]
    kept = len(natural)
    while kept > 1 and sum(floors[:kept]) + len(GAP) * (kept - 1) > limit:
        kept -= 1
    widths = natural[:kept]
    excess = sum(widths) + len(GAP) * (kept - 1) - limit
    while excess > 0:
        narrowable = [n for n in range(kept) if widths[n] > floors[n]]
        if not narrowable:
            break  # one column wider than the limit: its cells wrap at its header's width
        widest = max(narrowable, key=widths.__getitem__)
        runner_up = max((widths[n] for n in narrowable if n != widest), default=0)
        target = max(floors[widest], runner_up, widths[widest] - excess)
        target -= target == widths[widest]  # a tie: narrowed in turns, one at a time
        excess -= widths[widest] - target
        widths[widest] = target
    return widths


def _cell_lines(cell: str, width: int) -> list[str]:
    """Return a cell as the lines of a column ``width`` wide (at word breaks if it has any)."""
    if len(cell) <= width:
        return [cell]
    return textwrap.wrap(cell, width, break_on_hyphens=False) or [""]


def _wrapped(cells: list[str], widths: list[int]) -> list[str]:
    """Return a table row as lines: a cell wider than its column wraps onto the next ones."""
    parts = [_cell_lines(cell, width) for cell, width in zip(cells, widths, strict=True)]
    return [
        GAP.join(
            (part[n] if n < len(part) else "").ljust(width)
            for part, width in zip(parts, widths, strict=True)
        ).rstrip()
        for n in range(max(map(len, parts)))
    ]


def _show_done(message: str, out: TextIO) -> None:
    _write(out, message)


async def _cancel(chat: TwoChatSession, args: argparse.Namespace) -> str:
    await chat.cancel_reservation(args.uuid)
    return f"Cancelled reservation {args.uuid}"


async def _demo(chat: TwoChatSession, args: argparse.Namespace) -> list[str]:
    """Walk the number lifecycle: search, reserve, look at the expiry, cancel."""
    country, region_id = args.country, args.region_id
    place = country if region_id is None else f"{country}, region {region_id}"
    if region_id is None:  # 2Chat searches US groups only within a region: the first one
        regions = await chat.regions(country)
        if regions:
            region_id, place = regions[0].id, f"{country}, {regions[0].name}"
    groups = await chat.groups(country, region_id=region_id, did_type="local")
    if not groups:
        return [f"No local number groups in {place}."]
    group = groups[0]
    reservation = await chat.reserve(group.id)
    lines = [
        f"1. Found {len(groups)} local group(s) in {place}; using {group.id} "
        f"({group.location}, {group.prefix}, {group.monthly_price}/month).",
        f"2. Reserved {reservation.number} as {reservation.uuid}.",
        f"3. It expires at {_expiry(reservation)}: purchase it before then or cancel it.",
    ]
    await chat.cancel_reservation(reservation)
    active = await chat.reservations()
    lines.append(f"4. Cancelled it; {len(active)} active reservation(s) left.")
    return lines


class _NotConfirmed(Exception):
    """The user did not answer yes to a purchase: nothing is bought."""


async def _purchase(chat: TwoChatSession, args: argparse.Namespace) -> Purchase:
    if not (args.yes or args.fake):
        group = await _the_group(chat, args) if args.country is not None else None
        _confirm(args, group)
    purchase = await chat.purchase(args.group_id, args.number)
    if purchase.number is not None:
        return purchase
    # 2Chat picked the number: its answer is undocumented, so the number is looked for
    # where the fake (and, as far as is known, 2Chat) puts it; None if it is not there.
    data = purchase.details.get("data")
    found = data.get("number") if isinstance(data, Mapping) else None
    return attrs.evolve(purchase, number=found if isinstance(found, str) else None)


async def _the_group(chat: TwoChatSession, args: argparse.Namespace) -> NumberGroup:
    """Return the group a purchase buys from, found among ``--country``'s groups."""
    for group in await chat.groups(args.country, region_id=args.region_id):
        if group.id == args.group_id:
            return group
    where = args.country if args.region_id is None else f"{args.country}, region {args.region_id}"
    raise ValueError(
        f"group {args.group_id} is not among the number groups of {where}: check GROUP_ID, "
        "--country and --region-id; nothing was bought"
    )


def _confirm(args: argparse.Namespace, group: NumberGroup | None) -> None:
    """Ask on the terminal before a purchase; raise `_NotConfirmed` unless the answer is yes.

    The question shows the group's prices when ``group`` is known (``--country``).
    """
    what = args.number or "a random number"
    if group is None:
        question = f"Buy {what} from group {args.group_id}? It costs money."
    else:
        question = (
            f"Buy {what} from group {group.id} ({group.location}, {group.prefix}) for "
            f"{group.setup_price} setup and {group.monthly_price} a month?"
        )
    if _answer(f"{question} [y/N] ").strip().lower() not in ("y", "yes"):
        raise _NotConfirmed


def _answer(question: str) -> str:
    """Ask ``question`` on stderr and read a line of stdin, which one Ctrl-C interrupts.

    It runs inside ``asyncio.run()``, whose own SIGINT handler only cancels the main task,
    which cannot run while the read blocks: Python's default handler stands in, from
    before the question is shown.
    """
    if threading.current_thread() is not threading.main_thread():
        return _ask(question)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        return _ask(question)
    finally:
        signal.signal(signal.SIGINT, previous)


def _ask(question: str) -> str:
    _write(sys.stderr, question, end="")
    sys.stderr.flush()
    return sys.stdin.readline()


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


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line on stderr, escaped, then exit 2."""

    def error(self, message: str) -> NoReturn:
        """Say what is wrong with the command line in one line, and exit 2."""
        _write(sys.stderr, f"{self.prog}: error: {message} (see '{self.prog} --help')")
        sys.exit(2)


def _global_options(*, defaults: bool) -> _Parser:
    """Return the options every position accepts: before the subcommand or after it.

    The subcommands' copies default to ``SUPPRESS``, so that an option given before the
    subcommand is not reset by the subcommand's parser when it is not repeated there.
    """
    options = _Parser(add_help=False)

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


#: What COUNTRY, GROUP_ID and --region-id say in the help.
_COUNTRY = "an ISO 3166 alpha-2 country code, e.g. US"
_GROUP_ID = "a number group's id, from groups"
_REGION_ID = "a region id, from regions (2Chat needs one to search US groups)"


def _add_searches(add: Callable[[str, str], argparse.ArgumentParser]) -> None:
    """Add the subcommands that look things up, from regions to requirements."""
    add("regions", "list a country's regions").add_argument(
        "country", metavar="COUNTRY", help=_COUNTRY
    )
    cities = add("cities", "list a country's cities")
    cities.add_argument("country", metavar="COUNTRY", help=_COUNTRY)
    cities.add_argument("--region-id", type=int, help="only the cities of this region")
    add("did-types", "list the kinds of number (DID types)")
    groups = add("groups", "search a country's number groups, with their prices")
    groups.add_argument("country", metavar="COUNTRY", help=_COUNTRY)
    groups.add_argument("--region-id", type=int, help=_REGION_ID)
    groups.add_argument("--city-id", type=int, help="a city id, from cities")
    groups.add_argument("--city", help="a city name or number prefix")
    groups.add_argument("--did-type", help="local, mobile, tollfree, national, global, ...")
    available = add("available", "list the numbers of a group that can be picked")
    available.add_argument("group_id", metavar="GROUP_ID", help=_GROUP_ID)
    available.add_argument("--contains", help="digits the numbers must contain, e.g. 555")
    requirements = add("requirements", "list what a country requires of a buyer")
    requirements.add_argument("country", metavar="COUNTRY", help=_COUNTRY)
    requirements.add_argument("--did-type", type=int, help="a DID type id, from did-types")


def _add_orders(add: Callable[[str, str], argparse.ArgumentParser]) -> None:
    """Add the subcommands that reserve, buy, cancel and show the account."""
    reserve = add("reserve", "reserve a number of a group, to buy it later")
    reserve.add_argument("group_id", metavar="GROUP_ID", help=_GROUP_ID)
    reserve.add_argument("--number", help="a specific number of the group, in E.164")
    add("reservations", "list the active reservations")
    cancel = add("cancel", "cancel a reservation, releasing its number")
    cancel.add_argument(
        "uuid", metavar="UUID", help="the reservation's uuid, from reserve or reservations"
    )
    purchase = add("purchase", "buy a number of a group (this costs money)")
    purchase.add_argument("group_id", metavar="GROUP_ID", help=_GROUP_ID)
    purchase.add_argument("--number", help="the number to buy, e.g. a reserved one")
    purchase.add_argument(
        "-y", "--yes", action="store_true", help="buy without asking (needed without a terminal)"
    )
    purchase.add_argument(
        "--country", help="the group's country: the question then shows its prices"
    )
    purchase.add_argument("--region-id", type=int, help="the group's region, with --country")
    add("info", "show the account, its rate limit and usage")
    demo = add("demo", "a tour in one run: search, reserve, expiry, cancel")
    demo.add_argument(
        "country", metavar="COUNTRY", nargs="?", default="US", help=f"{_COUNTRY} (default: US)"
    )
    demo.add_argument("--region-id", type=int, help="a region id (default: the first region)")


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of the ``twochat`` command."""
    parser = _Parser(
        prog="twochat",
        description="2Chat's Numbers API from the command line. "
        "The API key is read from the TWOCHAT_API_KEY environment variable.",
        parents=[_global_options(defaults=True)],
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    # Not required here: main() names an unknown option first, then a missing COMMAND.
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    shared = _global_options(defaults=False)

    def add(name: str, summary: str) -> argparse.ArgumentParser:
        description = f"{summary[0].upper()}{summary[1:]}."
        return commands.add_parser(name, parents=[shared], help=summary, description=description)

    _add_searches(add)
    _add_orders(add)
    from .testing._server import add_arguments

    add_arguments(
        commands.add_parser(
            "fake-server",
            help="serve a fake 2Chat for other processes",
            description="Serve a fake 2Chat for other processes until interrupted; first "
            "print the TWOCHAT_BASE_URL and TWOCHAT_API_KEY that reach it.",
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
#: A subcommand's own spellings, over `_OPTION_NAMES`.
_COMMAND_OPTION_NAMES = {"purchase": {"country": "--country"}}


def _session(args: argparse.Namespace, api_key: str | None, base_url: str | None) -> TwoChatSession:
    """Return the session the options ask for."""
    from ._session import API_KEY_ENV, TwoChatSession

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


async def run(args: argparse.Namespace) -> Any:
    """Run the parsed command; return its result."""
    call, _ = COMMANDS[args.command]
    async with AsyncExitStack() as stack:
        if args.fake:
            from .testing import FakeTwoChat

            fake = FakeTwoChat()
            base_url = await stack.enter_async_context(fake)
            chat = _session(args, fake.api_key, base_url)
        else:
            chat = _session(args, None, args.base_url)
        await stack.enter_async_context(chat)
        return await call(chat, args)


def _show(args: argparse.Namespace, result: Any, out: TextIO) -> None:
    """Print a command's result: as JSON with ``--json``, else as its printer does."""
    if args.json:
        for line in _dumps(result, indent=2).splitlines():
            _write(out, line)
    else:
        COMMANDS[args.command][1](result, out)


def _refused_purchase(args: argparse.Namespace) -> int | None:
    """Refuse a purchase that could not be confirmed; return its exit status, or None.

    A script without ``--yes`` is refused (exit 2) before anything is sent, rather than
    left waiting for an answer nobody gives. ``--fake`` buys nothing real and never asks.
    """
    if args.command != "purchase" or args.yes or args.fake or sys.stdin.isatty():
        return None
    _write(
        sys.stderr,
        "twochat: error: purchase spends money: pass --yes to buy without a terminal to "
        "confirm on; nothing was bought",
    )
    return 2


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    """Return the parsed command line, or exit 2 naming what is wrong with it."""
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:  # before a missing COMMAND: `twochat --frob` is about --frob
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    if args.command is None:
        parser.error("the following arguments are required: COMMAND")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``twochat`` command; return its exit status (0 ok, 1 failed, 2 bad usage).

    A reader that closes the pipe early (``twochat reservations | head -1``) ends the
    command quietly with `EXIT_BROKEN_PIPE`, as Python's documentation recommends
    (https://docs.python.org/3/library/signal.html#note-on-sigpipe).
    """
    try:
        try:
            return _main(argv)
        finally:
            if sys.stdout is not None:  # None: started with stdout closed (`>&-`)
                sys.stdout.flush()  # a closed pipe shows here, not at the interpreter's exit
    except BrokenPipeError:
        # What is left unwritten would be flushed, and fail, again at exit.
        with contextlib.suppress(AttributeError, OSError, ValueError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        return EXIT_BROKEN_PIPE


def _main(argv: Sequence[str] | None) -> int:
    args = _parse(argv)
    if args.command == "fake-server":
        from .testing._server import run as serve

        return serve(args.host, args.port)
    refused = _refused_purchase(args)
    if refused is not None:
        return refused
    try:
        result = asyncio.run(run(args))
    except ValueError as exc:
        from ._wire import ArgumentError

        names = _OPTION_NAMES | _COMMAND_OPTION_NAMES.get(args.command, {})
        text = exc.words(names) if isinstance(exc, ArgumentError) else str(exc)
        _write(sys.stderr, f"twochat: error: {text}")
        return 2
    except TwoChatError as exc:
        _write(sys.stderr, f"twochat: {type(exc).__name__}: {exc}")
        return 1
    except _NotConfirmed:
        _write(sys.stderr, "twochat: not confirmed; nothing was bought")
        return 1
    except KeyboardInterrupt:
        _write(sys.stderr, "twochat: interrupted")
        return 130
    _show(args, result, sys.stdout)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
