"""The ``twochat`` command, run in-process through ``cli.main`` (and once as a process)."""

from __future__ import annotations

import asyncio
import io
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from conftest import API_KEY, envelope, fake_in_thread, serve

from twochat_async.cli import main
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
    """`groups US --did-type local` lists the local US groups with their prices."""
    lines = table(run_ok(capsys, "--fake", "groups", "US", "--did-type", "local"))
    header = lines[0]
    assert header[:3] == ["id", "prefix", "location"]
    by_id = {line[0]: dict(zip(header, line, strict=True)) for line in lines[1:]}
    assert sorted(by_id) == ["abc-123", "nyc-212"]
    assert by_id["abc-123"]["location"] == "Los Angeles"
    assert by_id["abc-123"]["monthly_price"] == "3.50"
    assert by_id["abc-123"]["allow_number_selection"] == "yes"


def test_groups_json_keeps_prices_as_strings(capsys: pytest.CaptureFixture[str]) -> None:
    """`--json groups` prints a list of group objects with exact decimal-string prices."""
    data = run_json(capsys, "--fake", "groups", "US", "--did-type", "local")
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
    assert [
        g["id"] for g in run_json(capsys, "--fake", "groups", "US", "--did-type", "tollfree")
    ] == ["tf-800"]
    assert [g["id"] for g in run_json(capsys, "--fake", "groups", "US", "--region-id", "124")] == [
        "nyc-212"
    ]
    assert [g["id"] for g in run_json(capsys, "--fake", "groups", "US", "--city", "los")] == [
        "abc-123"
    ]


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
    assert "(in 59m" in lines[2] or "(in 1h 00m)" in lines[2]
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
    """`demo CA` says there is no local group and reserves nothing."""
    assert run_ok(capsys, "--fake", "demo", "CA") == "No local number groups in CA.\n"


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
    assert re.fullmatch(r"in (59m \d\ds|1h 00m)\)", left)
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
    *argv: str, env: dict[str, str] | None = None, stdin: Any = asyncio.subprocess.DEVNULL
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
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


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
    lines = run_ok(capsys, "--base-url", served.base_url, "demo").split("\n")
    assert (
        lines[0]
        == f"1. Found 1 local group(s) in US; using abc-123 ({SHOWN}, +1 (213), 3.50/month)."
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


def _runs_the_command(test: Any) -> bool:
    """Whether a test runs ``twochat`` as a process of its own (directly or on a terminal)."""
    return not {"twochat", "on_a_terminal", "subprocess"}.isdisjoint(test.__code__.co_names)


# The tests that run the command as a real process are the slow tier (pytest -m "not slow");
# those that call main() in this process stay in the quick one.
for _test in [value for name, value in list(globals().items()) if name.startswith("test_")]:
    if _runs_the_command(_test):
        pytest.mark.slow(_test)
