"""The ``twochat`` command, run in-process through ``cli.main``."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from conftest import API_KEY, fake_in_thread

from twochat_async.cli import main

ROOT = Path(__file__).resolve().parent.parent
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


@pytest.fixture(autouse=True)
def no_ambient_config(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the developer's own TWOCHAT_* settings out of every test."""
    monkeypatch.delenv("TWOCHAT_API_KEY", raising=False)
    monkeypatch.delenv("TWOCHAT_BASE_URL", raising=False)


def rows(out: str) -> dict[str, str]:
    """Parse the human output, one ``label value`` pair a line."""
    return dict(line.split(None, 1) for line in out.splitlines())


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


def test_bad_number_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    """A number not in E.164 exits 2 with one line on stderr and no traceback."""
    assert main(["--fake", "reserve", "abc-123", "--number", "12135551234"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert len(captured.err.splitlines()) == 1
    assert captured.err.startswith("twochat: error: number must be an E.164 phone number")
    assert "Traceback" not in captured.err


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
