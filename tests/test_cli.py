"""The ``twochat`` command, run in-process through ``cli.main`` (and once as a process)."""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import re
import shlex
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from conftest import API_KEY, envelope, fake_in_thread, serve

from twochat_async import __version__
from twochat_async.cli import COMMANDS, _duration, build_parser, main
from twochat_async.testing import FakeTwoChat, Reply

ROOT = Path(__file__).resolve().parent.parent
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
UNKNOWN_UUID = "123e4567-e89b-12d3-a456-426614174000"


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeTwoChat]:
    """A FakeTwoChat outliving single main() calls, with TWOCHAT_API_KEY set to its key."""
    monkeypatch.setenv("TWOCHAT_API_KEY", API_KEY)
    with fake_in_thread() as fake:
        yield fake


def run_ok(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    """Run the command, check it exits 0 with nothing on stderr, and return stdout."""
    assert main(list(argv)) == 0
    captured = capsys.readouterr()
    assert captured.err == ""
    return captured.out


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> Any:
    """Run the command with --json and return the one JSON value it printed."""
    return json.loads(run_ok(capsys, "--json", *argv))


def table(out: str) -> list[list[str]]:
    """Split a printed table into rows of cells (cells are separated by 2+ spaces)."""
    return [re.split(r"\s{2,}", line.strip()) for line in out.splitlines()]


def cells(out: str) -> list[dict[str, str]]:
    """Parse a printed table whose cells may wrap: one dict per row, by header.

    A column starts where its header does; a line whose first column is blank carries on
    the row above, its pieces joined with a space.
    """
    header, *lines = out.splitlines()
    starts = [match.start() for match in re.finditer(r"\S+", header)]
    spans = list(zip(starts, [*starts[1:], None], strict=True))
    names = [header[start:end].strip() for start, end in spans]
    parsed: list[dict[str, str]] = []
    for line in lines:
        pieces = [line[start:end].strip() for start, end in spans]
        if pieces[0]:
            parsed.append(dict(zip(names, pieces, strict=True)))
        else:
            for name, piece in zip(names, pieces, strict=True):
                if piece:
                    parsed[-1][name] = f"{parsed[-1][name]} {piece}".strip()
    return parsed


def rows(out: str) -> dict[str, str]:
    """Parse ``label value`` output, one pair a line."""
    return dict(line.split(None, 1) for line in out.splitlines())


def test_regions_table(capsys: pytest.CaptureFixture[str]) -> None:
    """`regions US` prints a table of the US regions, California among them."""
    lines = table(run_ok(capsys, "--fake", "regions", "us"))
    assert lines[0] == ["id", "name", "country"]
    assert ["123", "California", "US"] in lines[1:]
    assert all(line[2] == "US" for line in lines[1:])
    assert "Ontario" not in {line[1] for line in lines}


def test_cities_of_a_region(capsys: pytest.CaptureFixture[str]) -> None:
    """`cities US --region-id 123` lists only the cities of California."""
    lines = table(run_ok(capsys, "--fake", "cities", "US", "--region-id", "123"))
    assert lines == [
        ["id", "name", "country"],
        ["456", "Los Angeles", "US"],
        ["457", "San Francisco", "US"],
    ]


def test_cities_without_region_lists_the_whole_country(capsys: pytest.CaptureFixture[str]) -> None:
    """`cities US` without --region-id includes cities of every US region."""
    names = [line[1] for line in table(run_ok(capsys, "--fake", "cities", "US"))[1:]]
    assert names == ["Los Angeles", "San Francisco", "New York City"]


def test_did_types(capsys: pytest.CaptureFixture[str]) -> None:
    """`did-types` prints id and name of every DID type."""
    lines = table(run_ok(capsys, "--fake", "did-types"))
    assert lines[0] == ["id", "name"]
    assert {line[1] for line in lines[1:]} == {
        "local",
        "mobile",
        "tollfree",
        "national",
        "global",
        "sharedcost",
    }
    assert ["1", "local"] in lines


def test_groups_table(capsys: pytest.CaptureFixture[str]) -> None:
    """`groups US --region-id 123` lists California's groups and the nationwide ones, priced."""
    out = run_ok(capsys, "--fake", "groups", "US", "--region-id", "123")
    assert cells(out) == [
        {
            "id": "abc-123",
            "prefix": "+1 (213)",
            "location": "Los Angeles",
            "type": "local",
            "setup": "0.00",
            "monthly": "3.50",
            "requires": "-",
            "pick": "yes",
            "features": "sms_in, sms_out, voice, whatsapp_business",
        },
        {
            "id": "tf-800",
            "prefix": "+1 (800)",
            "location": "United States",
            "type": "tollfree",
            "setup": "1.00",
            "monthly": "5.00",
            "requires": "-",
            "pick": "no",
            "features": "sms_in, sms_out, voice",
        },
    ]


def test_groups_json_keeps_prices_as_strings(capsys: pytest.CaptureFixture[str]) -> None:
    """`--json groups` prints a list of group objects with exact decimal-string prices."""
    data = run_json(capsys, "--fake", "groups", "US", "--region-id", "123", "--did-type", "local")
    assert isinstance(data, list)
    group = next(g for g in data if g["id"] == "abc-123")
    assert group == {
        "id": "abc-123",
        "prefix": "+1 (213)",
        "location": "Los Angeles",
        "setup_price": "0.00",
        "monthly_price": "3.50",
        "type": "local",
        "requirements": [],
        "allow_number_selection": True,
        "is_eligible_for_free_number": False,
        "features": ["sms_in", "sms_out", "voice", "whatsapp_business"],
    }
    assert {g["type"] for g in data} == {"local"}


def test_groups_filters_reach_the_fake(capsys: pytest.CaptureFixture[str]) -> None:
    """--did-type tollfree, --region-id and --city narrow the groups listed."""

    def found(*filters: str) -> list[str]:
        return [g["id"] for g in run_json(capsys, "--fake", "groups", "US", *filters)]

    assert found("--region-id", "124", "--did-type", "tollfree") == ["tf-800"]
    assert found("--region-id", "124") == ["nyc-212", "tf-800"]
    assert found("--region-id", "123", "--city", "los") == ["abc-123"]


def test_available_numbers(capsys: pytest.CaptureFixture[str]) -> None:
    """`available abc-123 --contains 1240` lists the numbers that filter leaves, id and number."""
    lines = table(run_ok(capsys, "--fake", "available", "abc-123", "--contains", "1240"))
    assert lines == [["id", "number"], ["did-12135551240", "+12135551240"]]


def test_requirements(capsys: pytest.CaptureFixture[str]) -> None:
    """`requirements DE` prints one row per requirement, columns from their keys."""
    lines = table(run_ok(capsys, "--fake", "requirements", "DE"))
    assert lines[0][:3] == ["id", "type", "description"]
    assert [line[0] for line in lines[1:]] == ["req-de-address", "req-de-identity", "req-de-mobile"]


def test_requirements_json_by_did_type(capsys: pytest.CaptureFixture[str]) -> None:
    """`--json requirements DE --did-type 2` keeps the free-form objects of that type only."""
    data = run_json(capsys, "--fake", "requirements", "DE", "--did-type", "2")
    assert data == [
        {
            "id": "req-de-mobile",
            "type": "identity",
            "description": "Proof of identity",
            "documents": ["id_card"],
        }
    ]


def test_reservations_empty_in_a_fresh_fake(capsys: pytest.CaptureFixture[str]) -> None:
    """`reservations` on a fresh fake prints (none); with --json, an empty list."""
    assert run_ok(capsys, "--fake", "reservations") == "(none)\n"
    assert run_json(capsys, "--fake", "reservations") == []


def test_reservations_lists_what_was_reserved(
    capsys: pytest.CaptureFixture[str], served: FakeTwoChat
) -> None:
    """`reservations` shows reservations made by an earlier run, as a table and as JSON."""
    base = ["--base-url", served.base_url]
    made = run_json(capsys, *base, "reserve", "abc-123", "--number", "+12135551237")
    lines = table(run_ok(capsys, *base, "reservations"))
    assert lines[0][:2] == ["uuid", "number"]
    assert [line[:2] for line in lines[1:]] == [[made["uuid"], "+12135551237"]]
    data = run_json(capsys, *base, "reservations")
    assert len(data) == 1
    assert sorted(data[0]) == ["created_at", "expires_at", "group_id", "number", "uuid"]
    assert (data[0]["uuid"], data[0]["number"]) == (made["uuid"], "+12135551237")
    assert data[0]["expires_at"] == made["expires_at"]
    assert data[0]["expires_at"].endswith("Z")


def test_reserve_then_cancel_across_two_runs(
    capsys: pytest.CaptureFixture[str], served: FakeTwoChat
) -> None:
    """`cancel UUID` cancels a reservation made by an earlier run on the same server."""
    base = ["--base-url", served.base_url]
    uuid = run_json(capsys, *base, "reserve", "abc-123")["uuid"]
    assert [r.uuid for r in served.active_reservations()] == [uuid]
    out = run_ok(capsys, *base, "cancel", uuid)
    assert out == f"Cancelled reservation {uuid}\n"
    assert served.active_reservations() == []
    assert served.calls[f"DELETE /open/numbers/reservations/{uuid}"] == 1
    assert all(r["headers"]["X-User-API-Key"] == API_KEY for r in served.requests)


def test_cancel_unknown_uuid_exits_1(
    capsys: pytest.CaptureFixture[str], served: FakeTwoChat
) -> None:
    """`cancel` of a uuid the server does not know exits 1 with NotFoundError on stderr."""
    assert main(["--base-url", served.base_url, "cancel", UNKNOWN_UUID]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == (
        f"twochat: NotFoundError: HTTP 404 (DELETE /open/numbers/reservations/{UNKNOWN_UUID}): "
        f"Reservation {UNKNOWN_UUID} not found\n"
    )


def test_cancel_in_a_fresh_fake_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    """`--fake cancel` has no reservation from earlier runs to cancel: NotFoundError, exit 1."""
    assert main(["--fake", "cancel", UNKNOWN_UUID]) == 1
    captured = capsys.readouterr()
    assert captured.err.startswith("twochat: NotFoundError: HTTP 404")
    assert len(captured.err.splitlines()) == 1


def test_purchase_a_number(capsys: pytest.CaptureFixture[str]) -> None:
    """`purchase abc-123 --number N` prints group, number and 2Chat's details."""
    shown = rows(run_ok(capsys, "--fake", "purchase", "abc-123", "--number", "+12135551236"))
    assert list(shown) == ["group_id", "number", "details"]
    assert (shown["group_id"], shown["number"]) == ("abc-123", "+12135551236")
    assert json.loads(shown["details"])["data"] == {"number": "+12135551236", "group_id": "abc-123"}


def test_purchase_a_reserved_number_across_runs(
    capsys: pytest.CaptureFixture[str], served: FakeTwoChat
) -> None:
    """Reserving then `--json purchase --number` of it buys that number on the server."""
    base = ["--base-url", served.base_url]
    number = run_json(capsys, *base, "reserve", "nyc-212")["number"]
    data = run_json(capsys, *base, "purchase", "nyc-212", "--number", number, "--yes")
    assert (data["group_id"], data["number"]) == ("nyc-212", number)
    assert served.sold == {number: "nyc-212"}
    assert served.active_reservations() == []


def test_info(capsys: pytest.CaptureFixture[str]) -> None:
    """`info` prints the account, its rate limit and usage as label/value lines."""
    shown = rows(run_ok(capsys, "--fake", "info"))
    assert shown["name"] == "Fake Account (ACCfake)"
    assert shown["requests_per_minute"] == "80"
    assert shown["on_trial"] == "no"
    assert shown["api_request_count"] == "1"


def test_info_json_counts_requests(capsys: pytest.CaptureFixture[str], served: FakeTwoChat) -> None:
    """`--json info` prints one object with the account fields and the request count."""
    base = ["--base-url", served.base_url]
    run_ok(capsys, *base, "did-types")
    run_ok(capsys, *base, "regions", "US")
    data = run_json(capsys, *base, "info")
    assert sorted(data) == [
        "api_request_count",
        "blocked",
        "created_at",
        "expires_at",
        "max_api_request_count",
        "max_number_check_count",
        "name",
        "number_check_count",
        "on_trial",
        "requests_per_minute",
        "uuid",
    ]
    assert data["uuid"] == "ACCfake"
    assert data["on_trial"] is False
    assert data["requests_per_minute"] == 80
    assert data["api_request_count"] == 3
    assert data["created_at"] == "2022-04-21T21:55:37Z"


def test_demo_walks_the_flow_and_leaves_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    """`--fake demo` prints the four steps and ends with 0 active reservations."""
    lines = run_ok(capsys, "--fake", "demo").splitlines()
    assert [line[:3] for line in lines] == ["1. ", "2. ", "3. ", "4. "]
    assert "abc-123" in lines[0]
    assert "3.50/month" in lines[0]
    assert re.fullmatch(rf"2\. Reserved \+12135551234 as {UUID.pattern}\.", lines[1])
    assert "expires at" in lines[2]
    assert re.search(r"\(in (59m \d{1,2}s|1h 0m)\)", lines[2])
    assert lines[3] == "4. Cancelled it; 0 active reservation(s) left."


def test_demo_against_a_server_cancels_what_it_reserved(
    capsys: pytest.CaptureFixture[str], served: FakeTwoChat
) -> None:
    """`demo` reserves one number and cancels it: the server is left with no reservation."""
    lines = run_ok(capsys, "--base-url", served.base_url, "demo").splitlines()
    assert len(lines) == 4
    assert served.calls["POST /open/numbers/reservations"] == 1
    assert sum(n for call, n in served.calls.items() if call.startswith("DELETE ")) == 1
    assert served.active_reservations() == []
    assert served.sold == {}


def test_demo_in_a_country_without_local_groups(capsys: pytest.CaptureFixture[str]) -> None:
    """`demo CA` says there is no local group in its first region and reserves nothing."""
    assert run_ok(capsys, "--fake", "demo", "CA") == "No local number groups in CA, Ontario.\n"


def test_demo_searches_a_region_of_the_us(capsys: pytest.CaptureFixture[str]) -> None:
    """`demo` names the region it searched (2Chat needs one for US); --region-id picks it."""
    assert run_ok(capsys, "--fake", "demo").startswith(
        "1. Found 1 local group(s) in US, California; using abc-123 "
    )
    assert run_ok(capsys, "--fake", "demo", "US", "--region-id", "124").startswith(
        "1. Found 1 local group(s) in US, region 124; using nyc-212 (New York City, "
    )


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["groups", "XX1"], "twochat: error: COUNTRY must be an ISO 3166 alpha-2 code"),
        (["groups", "US", "--did-type", "bogus"], "twochat: error: --did-type must be one of"),
        (["regions", "U5"], "twochat: error: COUNTRY must be an ISO 3166 alpha-2 code"),
        (["available", "abc-123", "--contains", "5a5"], "twochat: error: --contains must be"),
        (["purchase", "abc-123", "--number", "2135551234"], "twochat: error: --number must be"),
        (
            ["reserve", "abc-123", "--number", "12135551234"],
            "twochat: error: --number must be an E.164 phone number",
        ),
    ],
)
def test_bad_arguments_exit_2_with_one_line(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    """A bad argument exits 2 with one stderr line, no traceback, nothing on stdout."""
    assert main(["--fake", *argv]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert len(captured.err.splitlines()) == 1
    assert captured.err.startswith(message)
    assert "Traceback" not in captured.err


def test_no_selection_group_refuses_a_chosen_number(capsys: pytest.CaptureFixture[str]) -> None:
    """`available tf-800` fails with 2Chat's 406 as an APIError, exit 1."""
    assert main(["--fake", "available", "tf-800"]) == 1
    captured = capsys.readouterr()
    assert captured.err == (
        "twochat: APIError: HTTP 406 (GET /open/numbers/available): "
        "Number group tf-800 does not allow number selection\n"
    )


def test_fake_reserve_prints_the_reservation(capsys: pytest.CaptureFixture[str]) -> None:
    """`--fake reserve abc-123` prints number, group, reservation and times, exits 0."""
    assert main(["--fake", "reserve", "abc-123"]) == 0
    captured = capsys.readouterr()
    shown = rows(captured.out)
    assert list(shown) == ["number", "group", "reservation", "created", "expires"]
    assert shown["number"] == "+12135551234"
    assert shown["group"] == "abc-123"
    assert UUID.fullmatch(shown["reservation"])
    created = datetime.strptime(shown["created"], "%Y-%m-%d %H:%M:%S UTC")
    expires_text, left = shown["expires"].split(" (")
    expires = datetime.strptime(expires_text, "%Y-%m-%d %H:%M:%S UTC")
    assert expires - created == timedelta(hours=1)
    assert re.fullmatch(r"in (59m \d{1,2}s|1h 0m)\)", left)
    assert captured.err == ""


def test_fake_json_reserve_prints_one_json_object(capsys: pytest.CaptureFixture[str]) -> None:
    """`--fake --json reserve ... --number` prints one JSON object with every field."""
    argv = ["--fake", "--json", "reserve", "abc-123", "--number", "+12135551234"]
    assert main(argv) == 0
    captured = capsys.readouterr()
    data = json.loads(captured.out)
    assert sorted(data) == ["created_at", "expires_at", "group_id", "number", "uuid"]
    assert data["number"] == "+12135551234"
    assert data["group_id"] == "abc-123"
    assert UUID.fullmatch(data["uuid"])
    assert data["created_at"].endswith("Z")
    created = datetime.fromisoformat(data["created_at"].replace("Z", "+00:00"))
    expires = datetime.fromisoformat(data["expires_at"].replace("Z", "+00:00"))
    assert created.tzinfo == timezone.utc
    assert expires - created == timedelta(hours=1)
    assert captured.err == ""


def test_unknown_group_exits_1_naming_the_error(capsys: pytest.CaptureFixture[str]) -> None:
    """An unknown group exits 1 with the error class and 2Chat's message on stderr."""
    assert main(["--fake", "reserve", "no-such-group"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    expected = (
        "twochat: NotFoundError: HTTP 404 (POST /open/numbers/reservations): "
        "Number group no-such-group not found\n"
    )
    assert captured.err == expected


def test_missing_key_without_fake_names_the_variable(capsys: pytest.CaptureFixture[str]) -> None:
    """Without --fake and without TWOCHAT_API_KEY the command exits 2 naming the variable."""
    assert main(["reserve", "abc-123"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert len(captured.err.splitlines()) == 1
    assert "TWOCHAT_API_KEY" in captured.err


def test_reserve_against_a_running_fake_with_env_key(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """--base-url plus TWOCHAT_API_KEY reserves on the server named, with that key."""
    monkeypatch.setenv("TWOCHAT_API_KEY", API_KEY)
    with fake_in_thread() as fake:
        argv = ["--base-url", fake.base_url, "--json", "reserve", "abc-123"]
        argv += ["--number", "+12135551240"]
        assert main(argv) == 0
        data = json.loads(capsys.readouterr().out)
        assert [data["uuid"]] == list(fake.reservations)
        assert fake.reservations[data["uuid"]].number == "+12135551240"
        assert fake.requests[0]["headers"]["X-User-API-Key"] == API_KEY


def test_wrong_env_key_exits_1_without_showing_it(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A key the server refuses exits 1 with AuthenticationError, never printing the key."""
    monkeypatch.setenv("TWOCHAT_API_KEY", "wrong-key-9876")
    with fake_in_thread() as fake:
        assert main(["--base-url", fake.base_url, "reserve", "abc-123"]) == 1
    captured = capsys.readouterr()
    assert captured.err == (
        "twochat: AuthenticationError: HTTP 401 (POST /open/numbers/reservations): "
        "Invalid or missing API key\n"
    )
    assert "wrong-key-9876" not in captured.out + captured.err


class Terminal(io.StringIO):
    """A stdin that says it is a terminal, holding what the user types."""

    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(
    ("answer", "bought"),
    [
        ("y\n", True),
        ("yes\n", True),
        ("Y\n", True),
        ("\n", False),
        ("n\n", False),
        ("sure\n", False),
        ("", False),
    ],
    ids=["y", "yes", "Y", "enter", "n", "sure", "end-of-input"],
)
def test_purchase_on_a_terminal_buys_only_on_yes(
    served: FakeTwoChat,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    answer: str,
    bought: bool,
) -> None:
    """On a terminal, `purchase` asks first; y or yes buys, any other answer exits 1."""
    monkeypatch.setattr(sys, "stdin", Terminal(answer))
    code = main(["--base-url", served.base_url, "purchase", "abc-123", "--number", "+12135551236"])
    captured = capsys.readouterr()
    assert captured.err.startswith("Buy +12135551236 from group abc-123? It costs money. [y/N] ")
    if bought:
        assert (code, served.sold) == (0, {"+12135551236": "abc-123"})
    else:
        assert (code, captured.out) == (1, "")
        assert captured.err.endswith("twochat: not confirmed; nothing was bought\n")
        assert (served.sold, served.requests) == ({}, [])


def test_module_entry_point_runs() -> None:
    """`python -m twochat_async --fake reserve abc-123` works as a real process."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TWOCHAT_")}
    result = subprocess.run(
        [sys.executable, "-m", "twochat_async", "--fake", "reserve", "abc-123"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
        env=env,
        check=False,
    )
    assert (result.returncode, result.stderr) == (0, "")
    assert rows(result.stdout)["number"] == "+12135551234"


# -- The ``twochat`` command as a shell user meets it, run as a real process each time ---


async def twochat(
    *argv: str,
    env: dict[str, str] | None = None,
    stdin: Any = asyncio.subprocess.DEVNULL,
    stdout: Any = asyncio.subprocess.PIPE,
) -> tuple[int, str, str]:
    """Run ``python -m twochat_async ARGV`` without TWOCHAT_* of our own; (code, out, err)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TWOCHAT_")}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "twochat_async",
        *argv,
        env={**clean, **(env or {})},
        stdin=stdin,
        stdout=stdout,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, (out or b"").decode(), err.decode()


async def on_a_terminal(*argv: str, answer: bytes, env: dict[str, str]) -> tuple[int, str, str]:
    """Run the command with a pseudo-terminal as stdin, ``answer`` typed into it."""
    controller, terminal = os.openpty()
    try:
        os.write(controller, answer)
        return await twochat(*argv, env=env, stdin=terminal)
    finally:
        os.close(terminal)
        os.close(controller)


async def test_global_options_work_after_the_subcommand() -> None:
    """`twochat --fake reserve abc-123 --json`, options after the subcommand, prints JSON."""
    code, out, err = await twochat("--fake", "reserve", "abc-123", "--json")
    assert (code, err) == (0, "")
    assert json.loads(out)["number"] == "+12135551234"


async def test_global_options_before_the_subcommand_are_kept() -> None:
    """Options before the subcommand still count when the subcommand does not repeat them."""
    code, out, err = await twochat("--json", "--fake", "--timeout", "5", "reserve", "abc-123")
    assert (code, err) == (0, "")
    assert json.loads(out)["group_id"] == "abc-123"


async def test_a_later_global_option_wins() -> None:
    """An option given before and after the subcommand takes the later value."""
    code, out, err = await twochat("--fake", "--timeout", "5", "did-types", "--timeout", "-1")
    assert (code, out) == (2, "")
    assert err == (
        "twochat: error: --timeout must be a finite, positive number of seconds, got -1.0\n"
    )


async def test_missing_key_names_the_variable_not_the_argument() -> None:
    """Without a key the error says to set TWOCHAT_API_KEY, not to pass api_key=."""
    code, out, err = await twochat("reserve", "abc-123")
    assert (code, out) == (2, "")
    assert err == (
        "twochat: error: No 2Chat API key: set the TWOCHAT_API_KEY environment variable "
        "(or try --fake, which needs none).\n"
    )


async def test_plain_http_base_url_names_the_flag_to_allow_it() -> None:
    """An http:// --base-url to another machine is refused naming --allow-insecure-http."""
    code, _, err = await twochat(
        "--base-url", "http://192.0.2.1:9", "info", env={"TWOCHAT_API_KEY": API_KEY}
    )
    assert code == 2
    assert err.startswith("twochat: error: --base-url (or TWOCHAT_BASE_URL) 'http://192.0.2.1:9'")
    assert err.endswith("Use https. Pass --allow-insecure-http to allow it.\n")
    assert "allow_insecure_http=True" not in err


async def test_allow_insecure_http_flag_lets_the_request_go() -> None:
    """--allow-insecure-http passes the check: the call is attempted (and fails to connect)."""
    code, _, err = await twochat(
        "info",
        "--allow-insecure-http",
        "--base-url",
        "http://192.0.2.1:9",
        "--timeout",
        "0.5",
        env={"TWOCHAT_API_KEY": API_KEY},
    )
    assert code == 1
    assert "Check the base URL, your network and any proxy." in err
    assert err.startswith(("twochat: APIConnectionError:", "twochat: APITimeoutError:"))


async def test_purchase_without_a_terminal_needs_yes(fake: FakeTwoChat) -> None:
    """`purchase` from a script without --yes exits 2 saying so, and buys nothing."""
    code, out, err = await twochat(
        "--base-url", fake.base_url, "purchase", "abc-123", env={"TWOCHAT_API_KEY": API_KEY}
    )
    assert (code, out) == (2, "")
    assert err == (
        "twochat: error: purchase spends money: pass --yes to buy without a terminal to "
        "confirm on; nothing was bought\n"
    )
    assert (fake.sold, fake.requests) == ({}, [])


async def test_purchase_with_yes_prints_the_number_bought(fake: FakeTwoChat) -> None:
    """`purchase --yes` without --number buys and prints the number 2Chat picked."""
    code, out, err = await twochat(
        "purchase", "abc-123", "-y", "--base-url", fake.base_url, env={"TWOCHAT_API_KEY": API_KEY}
    )
    assert (code, err) == (0, "")
    [bought] = fake.sold
    assert out.splitlines()[:2] == ["group_id  abc-123", f"number    {bought}"]


@pytest.mark.parametrize("answer", [b"y\n"])  # every answer: the in-process test above
async def test_purchase_on_a_terminal_asks_and_buys_on_yes(
    fake: FakeTwoChat, answer: bytes
) -> None:
    """On a terminal, `purchase` asks first and buys when the answer is yes."""
    code, out, err = await on_a_terminal(
        "--base-url",
        fake.base_url,
        "purchase",
        "abc-123",
        "--number",
        "+12135551236",
        "--json",
        answer=answer,
        env={"TWOCHAT_API_KEY": API_KEY},
    )
    assert (code, err) == (0, "Buy +12135551236 from group abc-123? It costs money. [y/N] ")
    assert json.loads(out)["number"] == "+12135551236"
    assert fake.sold == {"+12135551236": "abc-123"}


@pytest.mark.parametrize("answer", [b"\n"])  # every answer: the in-process test above
async def test_purchase_on_a_terminal_buys_nothing_unless_yes(
    fake: FakeTwoChat, answer: bytes
) -> None:
    """On a terminal, any answer but yes (Enter included) exits 1 and buys nothing."""
    code, out, err = await on_a_terminal(
        "purchase",
        "abc-123",
        "--base-url",
        fake.base_url,
        answer=answer + b"\x04",  # Ctrl-D after it: end of input, as a user could type
        env={"TWOCHAT_API_KEY": API_KEY},
    )
    assert (code, out) == (1, "")
    assert err == (
        "Buy a random number from group abc-123? It costs money. [y/N] "
        "twochat: not confirmed; nothing was bought\n"
    )
    assert (fake.sold, fake.requests) == ({}, [])


async def test_fake_purchase_neither_asks_nor_hides_the_number() -> None:
    """`--fake purchase` (no money at stake) buys at once and prints the number bought."""
    code, out, err = await twochat("--fake", "purchase", "abc-123")
    assert (code, err) == (0, "")
    assert out.splitlines()[1] == "number    +12135551234"


# -- Text from the server cannot forge the terminal: every control character escaped -----

#: A region name as a hostile server could send it: OSC 52 (write the clipboard, ended by
#: BEL), a CR that rewinds the line, a forged line after LF, a bidi override, a C1 NEL.
HOSTILE = "Cal\x1b]52;c;ZXZpbA==\x07if\rornia\nPurchased +12135551234\u202e\x85"
#: How the command shows it.
SHOWN = "Cal\\x1b]52;c;ZXZpbA==\\x07if\\rornia\\nPurchased +12135551234\\u202e\\x85"


def printable_lines(text: str) -> bool:
    """Whether ``text`` holds no control character but the line ends the command writes."""
    return all(line.isprintable() for line in text.split("\n"))


def regions_answer(name: str) -> Reply:
    """A Get Regions answer of one region called ``name``."""
    region = {"id": 1, "region_name": name, "iso_country_code": "US"}
    return Reply(json={"success": True, "data": {"regions": [region]}})


def test_a_table_shows_2chats_control_characters_escaped(
    capsys: pytest.CaptureFixture[str], served: FakeTwoChat
) -> None:
    """A region name with OSC 52, CR, LF, a bidi override and NEL is one escaped cell."""
    served.script(regions_answer(HOSTILE))
    out = run_ok(capsys, "--base-url", served.base_url, "regions", "US")
    assert table(out) == [["id", "name", "country"], ["1", SHOWN, "US"]]
    assert printable_lines(out)


def test_an_error_message_from_2chat_is_one_escaped_line(
    capsys: pytest.CaptureFixture[str], served: FakeTwoChat
) -> None:
    """An error_message with CR/LF and ESC cannot erase the error line or add one: exit 1."""
    served.script(Reply(status=404, json=envelope(HOSTILE)))
    assert main(["--base-url", served.base_url, "reserve", "abc-123"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == (
        f"twochat: NotFoundError: HTTP 404 (POST /open/numbers/reservations): {SHOWN}\n"
    )


def test_a_reservations_fields_show_escaped(
    capsys: pytest.CaptureFixture[str], served: FakeTwoChat
) -> None:
    """A uuid that would print a forged 'number' line stays in its own row, escaped."""
    details = {
        "uuid": "r-1\r\nnumber       +19999999999",
        "number": "+12135551234\x1b[8m",  # ESC [8m: what follows is invisible
        "created_at": "2026-01-15T10:30:00Z",
        "expires_at": "2026-01-15T11:30:00Z",
    }
    data = {"reservation_details": details}
    served.script(Reply(status=201, json={"success": True, "data": data}))
    shown = rows(run_ok(capsys, "--base-url", served.base_url, "reserve", "abc-123"))
    assert list(shown) == ["number", "group", "reservation", "created", "expires"]
    assert shown["number"] == "+12135551234\\x1b[8m"
    assert shown["reservation"] == "r-1\\r\\nnumber       +19999999999"


def test_an_account_record_shows_escaped(
    capsys: pytest.CaptureFixture[str], served: FakeTwoChat
) -> None:
    """`info` prints a hostile account name escaped, on its own line."""
    account = {
        "name": HOSTILE,
        "uuid": "ACC\x9b2J",  # CSI as one C1 character: clear the screen
        "on_trial": False,
        "blocked": False,
        "created_at": "2022-04-21T21:55:37Z",
    }
    usage = dict.fromkeys(
        ["api_request_count", "max_api_request_count", "number_check_count"], 1
    ) | {"max_number_check_count": 1}
    answer = {"success": True, "account": account, "limits": {"requests_per_minute": 80}}
    served.script(Reply(json=answer | {"usage": usage}))
    out = run_ok(capsys, "--base-url", served.base_url, "info")
    assert (rows(out)["name"], rows(out)["uuid"]) == (SHOWN, "ACC\\x9b2J")
    assert len(out.splitlines()) == 11
    assert printable_lines(out)


def test_free_form_keys_and_values_show_escaped(
    capsys: pytest.CaptureFixture[str], served: FakeTwoChat
) -> None:
    """A requirement's keys are 2Chat's text too: the column names are escaped as well."""
    requirement = {"id\x1b[31m": "req\r1", "kind": "identity\u2028address"}
    served.script(Reply(json={"success": True, "data": {"requirements": [requirement]}}))
    out = run_ok(capsys, "--base-url", served.base_url, "requirements", "DE")
    assert table(out) == [["id\\x1b[31m", "kind"], ["req\\r1", "identity\\u2028address"]]


def test_the_demo_shows_a_hostile_group_escaped(
    capsys: pytest.CaptureFixture[str], served: FakeTwoChat
) -> None:
    """`demo` quotes the group's location escaped; its four lines stay four."""
    group = {
        "id": "abc-123",
        "prefix": "+1 (213)",
        "location": HOSTILE,
        "price": {"setup_price": "0.00", "monthly_price": "3.50"},
        "type": "local",
        "requirements": [],
        "allow_number_selection": True,
        "is_eligible_for_free_number": False,
        "features": ["voice"],
    }
    served.script(Reply(json={"success": True, "data": {"groups": [group]}}))
    lines = run_ok(capsys, "--base-url", served.base_url, "demo", "--region-id", "1").split("\n")
    assert lines[0] == (
        f"1. Found 1 local group(s) in US, region 1; using abc-123 ({SHOWN}, +1 (213), 3.50/month)."
    )
    assert [line[:3] for line in lines] == ["1. ", "2. ", "3. ", "4. ", ""]
    assert served.active_reservations() == []


def test_a_lone_surrogate_from_2chat_is_shown_not_exit_2(
    capsys: pytest.CaptureFixture[str], served: FakeTwoChat
) -> None:
    """JSON's "\\ud800" escape decodes to a lone surrogate: the table escapes it, exit 0."""
    served.script(regions_answer("Cal\ud800ifornia"), regions_answer("Cal\ud800ifornia"))
    base = ["--base-url", served.base_url]
    assert table(run_ok(capsys, *base, "regions", "US"))[1] == ["1", "Cal\\ud800ifornia", "US"]
    # JSON has an escape for it: the same text comes back to a JSON reader.
    assert run_json(capsys, *base, "regions", "US")[0]["name"] == "Cal\ud800ifornia"


def test_output_the_terminal_cannot_encode_is_escaped_not_an_error(
    served: FakeTwoChat, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On an ASCII stdout (PYTHONIOENCODING=ascii, an old console) non-ASCII is escaped."""
    stdout = io.TextIOWrapper(io.BytesIO(), encoding="ascii", write_through=True)
    monkeypatch.setattr(sys, "stdout", stdout)
    served.script(regions_answer("Zürich 東京"))
    assert main(["--base-url", served.base_url, "regions", "US"]) == 0
    out = stdout.buffer.getvalue().decode("ascii")  # type: ignore[attr-defined]
    assert table(out)[1] == ["1", "Z\\xfcrich \\u6771\\u4eac", "US"]


def _refuse_constant(name: str) -> None:
    raise ValueError(f"not strict JSON: {name}")


def test_json_output_is_strict_json_whatever_numbers_2chat_sends(
    capsys: pytest.CaptureFixture[str], served: FakeTwoChat
) -> None:
    """NaN and Infinity in a free-form answer never reach --json output as NaN/Infinity."""
    body = b'{"success":true,"data":{"requirements":[{"id":"r","fee":NaN,"cap":-Infinity}]}}'
    served.script(Reply(body=body))
    code = main(["--base-url", served.base_url, "--json", "requirements", "DE"])
    captured = capsys.readouterr()
    # Whether decoding refuses NaN (exit 1, a one-line error) or keeps it, the output is
    # strict JSON: NaN as null.
    if code == 0:
        data = json.loads(captured.out, parse_constant=_refuse_constant)
        assert data == [{"id": "r", "fee": None, "cap": None}]
    else:
        assert (code, captured.out) == (1, "")
        assert captured.err.startswith("twochat: InvalidResponseError: ")
        assert len(captured.err.splitlines()) == 1


# -- the same, as a shell user meets it: the command as a process against a hostile server


async def hostile(request: web.Request) -> web.Response:
    """2Chat as an attacker would answer: control characters in every text it sends."""
    if request.path == "/open/numbers/regions":
        region = {"id": 1, "region_name": HOSTILE + "\ud800", "iso_country_code": "US"}
        return web.json_response({"success": True, "data": {"regions": [region]}})
    if request.path == "/open/numbers/requirements":
        body = '{"success":true,"data":{"requirements":[{"id":"r","fee":NaN}]}}'
        return web.Response(text=body, content_type="application/json")
    return web.json_response(envelope(HOSTILE), status=404)


async def test_the_command_prints_no_control_character_a_server_sends() -> None:
    """Tables, --json and errors: no raw ESC, BEL, CR, NEL, bidi or surrogate on either stream."""
    env = {"TWOCHAT_API_KEY": API_KEY}
    async with serve(hostile) as base_url:
        listed = await twochat("--base-url", base_url, "regions", "US", env=env)
        as_json = await twochat("--base-url", base_url, "--json", "regions", "US", env=env)
        failed = await twochat("--base-url", base_url, "cancel", "abc-123", env=env)
    assert listed[::2] == (0, "")
    assert table(listed[1]) == [["id", "name", "country"], ["1", SHOWN + "\\ud800", "US"]]
    assert as_json[::2] == (0, "")
    assert json.loads(as_json[1])[0]["name"] == HOSTILE + "\ud800"
    assert failed[:2] == (1, "")
    assert failed[2] == (
        f"twochat: NotFoundError: HTTP 404 (DELETE /open/numbers/reservations/abc-123): {SHOWN}\n"
    )
    for _, out, err in (listed, as_json, failed):
        assert printable_lines(out)
        assert printable_lines(err)


async def test_the_command_prints_strict_json_and_never_exits_2_for_an_answer() -> None:
    """NaN in an answer is a clean exit 1 naming it; a lone surrogate is output, not exit 2."""
    env = {"TWOCHAT_API_KEY": API_KEY, "PYTHONIOENCODING": "ascii"}
    async with serve(hostile) as base_url:
        code, out, err = await twochat(
            "--base-url", base_url, "--json", "requirements", "DE", env=env
        )
        listed = await twochat("--base-url", base_url, "regions", "US", env=env)
    assert (code, out) == (1, "")
    assert err == (
        "twochat: InvalidResponseError: 2Chat answered 200 OK with JSON holding NaN, which "
        "JSON does not allow\n"
    )
    assert listed[::2] == (0, "")
    assert table(listed[1])[1] == ["1", SHOWN + "\\ud800", "US"]


async def deep(request: web.Request) -> web.Response:
    """An answer nested 100,000 deep, which once raised a raw RecursionError."""
    return web.Response(text="[" * 100_000 + "]" * 100_000, content_type="application/json")


async def test_the_command_reports_a_deeply_nested_answer_in_one_line() -> None:
    """Exit 1 and one line naming the problem, not a RecursionError traceback."""
    env = {"TWOCHAT_API_KEY": API_KEY}
    async with serve(deep) as base_url:
        code, out, err = await twochat("--base-url", base_url, "reservations", env=env)
    assert (code, out) == (1, "")
    assert err == (
        "twochat: InvalidResponseError: 2Chat answered 200 OK with JSON nested deeper "
        "than 64 levels\n"
    )


# -- The command in a shell: pipes, usage errors, help, start-up, widths, the prompt ------


def region_list(count: int) -> Reply:
    """A Get Regions answer of ``count`` regions: a table longer than a pipe's buffer."""
    regions = [
        {"id": n, "region_name": f"Region {n}", "iso_country_code": "US"} for n in range(count)
    ]
    return Reply(json={"success": True, "data": {"regions": regions}})


@pytest.mark.parametrize(
    ("argv", "codes"),
    [
        (["--fake", "reservations"], {141}),
        (["--fake", "--json", "did-types"], {141}),
        # argparse itself swallows a failed write of help (exit 0); any Python's way is fine.
        (["--help"], {0, 141}),
        (["--version"], {0, 141}),
    ],
    ids=["table", "json", "help", "version"],
)
async def test_output_into_a_closed_pipe_ends_quietly(argv: list[str], codes: set[int]) -> None:
    """Writing to a pipe nobody reads is exit 141 (a SIGPIPE death), no traceback on stderr."""
    read_end, write_end = os.pipe()
    os.close(read_end)  # closed before the command starts: its first write finds no reader
    try:
        code, out, err = await twochat(*argv, stdout=write_end)
    finally:
        os.close(write_end)
    assert (out, err) == ("", "")
    assert code in codes


def shell(line: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``line`` in bash with ``twochat`` meaning this interpreter's command."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TWOCHAT_")}
    command = f'twochat() {{ {shlex.quote(sys.executable)} -m twochat_async "$@"; }}; {line}'
    return subprocess.run(  # noqa: S603 - our own command line
        ["/bin/bash", "-c", command],
        capture_output=True,
        text=True,
        timeout=60,
        env={**clean, **(env or {})},
        cwd=ROOT,
        check=False,
    )


def test_a_table_piped_into_head_ends_quietly() -> None:
    """`twochat regions US | head -1` prints the header; twochat exits 141, stderr empty."""
    with fake_in_thread() as fake:
        fake.script(region_list(5000))  # ~75 KB: more than a pipe holds, so head closes it
        result = shell(
            f'twochat --base-url {fake.base_url} regions US | head -1; echo "${{PIPESTATUS[0]}}"',
            env={"TWOCHAT_API_KEY": API_KEY},
        )
    assert (result.stdout.split(), result.stderr) == (["id", "name", "country", "141"], "")


def test_the_issues_pipe_into_true_ends_quietly() -> None:
    """`twochat --fake reservations | true`: no BrokenPipeError; exit 0, or 141 if it broke."""
    result = shell('twochat --fake reservations | true; echo "${PIPESTATUS[0]}"')
    assert result.stderr == ""
    assert result.stdout in ("0\n", "141\n")


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["available", "abc-123", "--contains", "abc"], "--contains must be 1 to 15 digits"),
        (["cities", "US", "--region-id", "-1"], "--region-id must be a non-negative int id"),
        (["groups", "US", "--region-id", "-1"], "--region-id must be a non-negative int id"),
        (["groups", "US", "--region-id", "1", "--did-type", "foo"], "--did-type must be one of"),
        (["requirements", "DE", "--did-type", "-2"], "--did-type must be a non-negative int id"),
        (["available", " "], "GROUP_ID must be a non-empty string"),
        (["reserve", "\t"], "GROUP_ID must be a non-empty string"),
        (["cancel", " "], "UUID must be"),
        (["groups", "USA"], "COUNTRY must be an ISO 3166 alpha-2 code"),
    ],
)
async def test_a_bad_value_is_named_as_typed(argv: list[str], named: str) -> None:
    """The error names the option or argument as typed, not the Python parameter; exit 2."""
    code, out, err = await on_a_terminal("--fake", *argv, answer=b"y\n", env={})
    assert (code, out) == (2, "")
    assert err.startswith(f"twochat: error: {named}")
    assert len(err.splitlines()) == 1
    python_names = ("number_contains", "region_id", "did_type", "group_id", "country ")
    assert not any(name in err for name in python_names)


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["fake-server", "--port", "99999"], "twochat fake-server: error: argument --port: must "),
        (["fake-server", "--port", "-1"], "twochat fake-server: error: argument --port: must "),
        (["fake-server", "--port", "http"], "twochat fake-server: error: argument --port: must "),
        (["--timeout", "soon", "info"], "twochat: error: argument --timeout: invalid float"),
        (["cities", "US", "--region-id", "CA"], "twochat cities: error: argument --region-id: "),
        (["--frob"], "twochat: error: unrecognized arguments: --frob"),
        (["--fake", "groups", "US", "--frob", "1"], "twochat: error: unrecognized arguments: "),
        (["frob"], "twochat: error: argument COMMAND: invalid choice: 'frob'"),
        (["--fake"], "twochat: error: the following arguments are required: COMMAND"),
        (["groups"], "twochat groups: error: the following arguments are required: COUNTRY"),
    ],
)
async def test_a_bad_command_line_exits_2_in_one_line(argv: list[str], expected: str) -> None:
    """Bad ports, values and unknown options: one stderr line naming them, exit 2."""
    code, out, err = await twochat(*argv)
    assert (code, out) == (2, "")
    assert err.startswith(expected)
    assert err.endswith("--help')\n")
    assert len(err.splitlines()) == 1


async def test_an_unknown_option_is_named_not_a_missing_command() -> None:
    """`twochat --frob` names --frob; the COMMAND it lacks is not what it complains of."""
    code, _, err = await twochat("--frob")
    assert code == 2
    assert "--frob" in err
    assert "COMMAND" not in err


def subcommands() -> dict[str, argparse.ArgumentParser]:
    """The ``twochat`` subcommands' parsers, by name."""
    [action] = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(action.choices)


def test_there_are_subcommands_to_check() -> None:
    """The checks of descriptions below see every subcommand (else they pass vacuously)."""
    assert sorted(subcommands()) == sorted([*COMMANDS, "fake-server"])


async def test_help_gives_every_subcommand_a_one_line_description() -> None:
    """`twochat --help` lists each subcommand beside a description that fits its line."""
    code, out, err = await twochat("--help")
    assert (code, err) == (0, "")
    listed = dict(re.findall(r"^    (\S+) +(\S.*)$", out, re.M))
    assert sorted(listed) == sorted(subcommands())
    for name, parser in subcommands().items():
        assert parser.description is not None
        assert parser.description.lower().startswith(listed[name].lower())


@pytest.mark.parametrize("name", [*COMMANDS, "fake-server"])
def test_every_argument_of_a_subcommand_has_help(name: str) -> None:
    """Each positional argument and option of each subcommand says what it is."""
    actions = subcommands()[name]._actions
    assert actions  # -h at least
    assert [a.dest for a in actions if not a.help] == []


async def test_a_subcommands_help_shows_its_description() -> None:
    """`twochat groups --help` starts with what groups does and explains COUNTRY."""
    code, out, err = await twochat("groups", "--help")
    assert (code, err) == (0, "")
    assert "\n\nSearch a country's number groups, with their prices.\n" in out
    assert re.search(r"^  COUNTRY +an ISO 3166 alpha-2 country code", out, re.M)


@pytest.mark.parametrize("argv", [["--help"], ["--version"], ["groups", "--help"]])
async def test_help_and_version_import_neither_aiohttp_nor_the_fake(argv: list[str]) -> None:
    """`twochat --help`/`--version` start without aiohttp, cattrs, the session or the fake."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-X",
        "importtime",
        "-m",
        "twochat_async",
        *argv,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0
    imported = set(re.findall(r"^import time:.*\| +(\S+)$", err.decode(), re.M))
    assert {"twochat_async.cli", "twochat_async.errors", "argparse"} <= imported
    heavy = {"aiohttp", "cattrs", "twochat_async._session", "twochat_async._wire"}
    assert heavy & imported == set()
    assert {"twochat_async.testing._fake", "twochat_async.testing._server"} & imported <= {
        "twochat_async.testing._server"  # its --host and --port, without the fake
    }


def test_the_cli_module_itself_imports_no_aiohttp() -> None:
    """Importing twochat_async.cli and running --version leaves aiohttp unimported."""
    program = (
        "import sys\n"
        "from twochat_async.cli import main\n"
        "try:\n    main(['--version'])\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in ('aiohttp', 'twochat_async.testing._fake') if m in sys.modules))"
    )
    result = subprocess.run(  # noqa: S603 - our own interpreter and program
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=60, check=False
    )
    assert (result.returncode, result.stdout) == (0, f"twochat {__version__}\n[]\n")


async def test_the_groups_table_fits_100_columns_and_json_keeps_every_field() -> None:
    """`groups US --region-id 123` is at most 100 wide; --json keeps the columns left out."""
    code, out, err = await twochat("--fake", "groups", "US", "--region-id", "123")
    assert (code, err) == (0, "")
    assert max(map(len, out.splitlines())) <= 100
    assert cells(out)[0]["features"] == "sms_in, sms_out, voice, whatsapp_business"
    code, out, _ = await twochat("--fake", "--json", "groups", "US", "--region-id", "123")
    assert "is_eligible_for_free_number" in json.loads(out)[0]


def test_a_wide_cell_wraps_within_100_columns(
    capsys: pytest.CaptureFixture[str], served: FakeTwoChat
) -> None:
    """A 250-character region name wraps inside its column; joined again, it is whole."""
    name = " ".join(f"word{n:02d}" for n in range(36))
    served.script(regions_answer(name))
    out = run_ok(capsys, "--base-url", served.base_url, "regions", "US")
    assert max(map(len, out.splitlines())) <= 100
    assert len(out.splitlines()) > 2
    assert cells(out) == [{"id": "1", "name": name, "country": "US"}]


def test_too_many_free_form_columns_are_left_out_and_named(
    capsys: pytest.CaptureFixture[str], served: FakeTwoChat
) -> None:
    """A requirement with 20 keys shows the columns that fit, then names the ones left out."""
    requirement = {f"field_{n:02d}": f"value {n}" for n in range(20)}
    served.script(Reply(json={"success": True, "data": {"requirements": [requirement]}}))
    out = run_ok(capsys, "--base-url", served.base_url, "requirements", "DE")
    assert max(map(len, out.splitlines())) <= 100
    table_part, note = out.split("\n(")
    shown = cells(table_part)[0]
    assert list(shown) == list(requirement)[: len(shown)]
    assert 1 < len(shown) < 20
    assert " ".join(f"({note}".split()) == (
        f"({', '.join(list(requirement)[len(shown) :])} left out to fit 100 columns; "
        "--json shows all)"
    )


async def purchase_answering_yes(fake: FakeTwoChat, *argv: str) -> tuple[int, str, str]:
    """``twochat purchase ARGV...`` against ``fake``, on a terminal that answers ``y``."""
    return await on_a_terminal(
        *("--base-url", fake.base_url, "purchase", *argv),
        answer=b"y\n",
        env={"TWOCHAT_API_KEY": API_KEY},
    )


async def test_the_purchase_question_shows_the_price_when_the_group_is_known(
    fake: FakeTwoChat,
) -> None:
    """With --country and --region-id the question says the setup and monthly price."""
    code, out, err = await purchase_answering_yes(
        fake, "tf-800", "--country", "US", "--region-id", "124"
    )
    assert (code, err) == (
        0,
        "Buy a random number from group tf-800 (United States, +1 (800)) for 1.00 setup and "
        "5.00 a month? [y/N] ",
    )
    assert list(fake.sold.values()) == ["tf-800"]
    assert rows(out)["group_id"] == "tf-800"


async def test_a_bad_country_for_the_purchase_question_is_named_as_typed(
    fake: FakeTwoChat,
) -> None:
    """`purchase --country U1` names --country, not COUNTRY or country: exit 2, nothing sent."""
    code, out, err = await purchase_answering_yes(fake, "abc-123", "--country", "U1")
    assert (code, out) == (2, "")
    assert err.startswith("twochat: error: --country must be an ISO 3166 alpha-2 code")
    assert (fake.sold, fake.requests) == ({}, [])


async def test_a_purchase_of_a_group_not_in_the_country_asks_nothing_and_buys_nothing(
    fake: FakeTwoChat,
) -> None:
    """A group --country does not list is exit 2 naming the options: no question, no sale."""
    code, out, err = await purchase_answering_yes(
        fake, "ber-30", "--country", "US", "--region-id", "123"
    )
    assert (code, out) == (2, "")
    assert err == (
        "twochat: error: group ber-30 is not among the number groups of US, region 123: "
        "check GROUP_ID, --country and --region-id; nothing was bought\n"
    )
    assert (fake.sold, fake.calls["POST /open/numbers/purchase"]) == ({}, 0)


@pytest.mark.parametrize(
    ("delta", "shown"),
    [
        (timedelta(hours=1, minutes=2, seconds=30), "1h 2m"),
        (timedelta(minutes=59, seconds=59, microseconds=748923), "59m 59s"),
        (timedelta(seconds=5, microseconds=999), "5s"),
        (timedelta(hours=26), "26h 0m"),
    ],
)
def test_durations_read_as_hours_minutes_seconds(delta: timedelta, shown: str) -> None:
    """A duration prints as 1h 2m, 59m 59s or 5s: never 0:59:59.748923."""
    assert _duration(delta) == shown


async def test_a_reservation_shows_how_long_it_holds_in_hours_and_minutes() -> None:
    """`reserve` on a fake holding numbers 1h 2m 30s prints `(in 1h 2m)` after the expiry."""
    with fake_in_thread(reservation_ttl=timedelta(hours=1, minutes=2, seconds=30)) as fake:
        code, out, err = await twochat(
            "--base-url", fake.base_url, "reserve", "abc-123", env={"TWOCHAT_API_KEY": API_KEY}
        )
        listed = await twochat(
            "--base-url", fake.base_url, "reservations", env={"TWOCHAT_API_KEY": API_KEY}
        )
    assert (code, err) == (0, "")
    assert rows(out)["expires"].endswith(" UTC (in 1h 2m)")
    assert listed[::2] == (0, "")
    assert cells(listed[1])[0]["left"] == "1h 2m"


def _runs_the_command(test: Any) -> bool:
    """Whether a test runs ``twochat`` as a process of its own (directly or on a terminal)."""
    return not {"twochat", "on_a_terminal", "subprocess"}.isdisjoint(test.__code__.co_names)


# The tests that run the command as a real process are the slow tier (pytest -m "not slow");
# those that call main() in this process stay in the quick one.
for _test in [value for name, value in list(globals().items()) if name.startswith("test_")]:
    if _runs_the_command(_test):
        pytest.mark.slow(_test)


async def test_one_ctrl_c_at_the_purchase_question_ends_the_command(fake: FakeTwoChat) -> None:
    """The question waits on the terminal inside asyncio.run(): a single SIGINT (Ctrl-C)
    ends the command there and then, and nothing is bought."""
    controller, terminal = os.openpty()
    clean = {k: v for k, v in os.environ.items() if not k.startswith("TWOCHAT_")}
    process = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "twochat_async", "--base-url", fake.base_url),
        *("purchase", "abc-123", "--country", "US", "--region-id", "123"),
        env=clean | {"TWOCHAT_API_KEY": API_KEY},
        stdin=terminal,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert process.stderr is not None
        asked = await asyncio.wait_for(process.stderr.readuntil(b"[y/N] "), 60)
        assert b"3.50 a month" in asked
        process.send_signal(signal.SIGINT)
        code = await asyncio.wait_for(process.wait(), 10)  # before the fix: until Enter
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        os.close(terminal)
        os.close(controller)
    assert code != 0
    assert fake.sold == {}
    assert "POST /open/numbers/purchase" not in fake.calls


def test_a_closed_stdout_is_no_traceback() -> None:
    """`twochat --version >&-`: stdout closed from the start, exit 0, no traceback."""
    finished = subprocess.run(  # noqa: S603 - a POSIX shell running our command
        ["/bin/sh", "-c", f"'{sys.executable}' -m twochat_async --version >&-"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert finished.returncode == 0, finished.stderr
    assert "Traceback" not in finished.stderr
