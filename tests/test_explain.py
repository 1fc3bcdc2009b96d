"""Errors and objects that explain themselves: APIError's request, reprs, DidTypeName."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import get_args

import pytest

from twochat_async import APIError, NotFoundError, RateLimitError, TwoChatSession
from twochat_async.models import DidTypeName
from twochat_async.testing import FakeTwoChat, Reply

API_KEY = "test-secret-key-0123456789"
ROOT = Path(__file__).resolve().parents[1]


async def test_api_error_names_the_request_it_answers(
    fake: FakeTwoChat, chat: TwoChatSession
) -> None:
    """A 404 on cancel carries method and path, and shows them in its message."""
    with pytest.raises(NotFoundError) as info:
        await chat.cancel_reservation("abc")
    assert (info.value.method, info.value.path) == ("DELETE", "/open/numbers/reservations/abc")
    assert str(info.value) == (
        "HTTP 404 (DELETE /open/numbers/reservations/abc): Reservation abc not found"
    )


async def test_api_error_path_leaves_out_the_query_and_the_key(
    fake: FakeTwoChat, chat: TwoChatSession
) -> None:
    """A failed search names its path without the query string; the key is nowhere."""
    fake.script(Reply(status=429, headers={"Retry-After": "120"}))
    with pytest.raises(RateLimitError) as info:
        await chat.groups("US", region_id=123, did_type="local")
    assert (info.value.method, info.value.path) == ("GET", "/open/numbers/groups")
    assert str(info.value).startswith("HTTP 429 (GET /open/numbers/groups): ")
    assert API_KEY not in str(info.value) + repr(info.value) + repr(vars(info.value))


def test_api_error_built_by_hand_keeps_its_old_message() -> None:
    """Without method and path (built by hand), str() is as before: status and message."""
    error = APIError("boom", status=500)
    assert (error.method, error.path, str(error)) == (None, None, "HTTP 500: boom")
    named = APIError("boom", status=500, method="GET", path="/open/info")
    assert str(named) == "HTTP 500 (GET /open/info): boom"


async def test_fake_repr_shows_address_state_and_counts_never_the_key() -> None:
    """repr(FakeTwoChat) says where it runs and what it holds, and not its key."""
    fake = FakeTwoChat("a-fake-key-of-some-length")
    groups = len(fake.groups)
    assert repr(fake) == f"<FakeTwoChat stopped groups={groups} reservations=0 sold=0>"
    async with fake as base_url, TwoChatSession(fake.api_key, base_url=base_url) as chat:
        await chat.reserve("abc-123")
        await chat.purchase("abc-123")
        running = repr(fake)
    assert running == (f"<FakeTwoChat running at {base_url} groups={groups} reservations=1 sold=1>")
    assert fake.api_key not in running
    assert repr(fake).startswith("<FakeTwoChat stopped ")


def test_did_type_literal_lists_exactly_the_accepted_values() -> None:
    """DidTypeName holds the seven values groups() accepts at run time, no more, no less."""
    assert sorted(get_args(DidTypeName)) == [
        "all",
        "global",
        "local",
        "mobile",
        "national",
        "sharedcost",
        "tollfree",
    ]


async def test_every_did_type_name_is_accepted(chat: TwoChatSession) -> None:
    """Each value of DidTypeName is a valid groups() filter."""
    for name in get_args(DidTypeName):
        assert isinstance(await chat.groups("US", did_type=name), list)


def test_mypy_catches_a_did_type_typo(tmp_path: Path) -> None:
    """mypy --strict rejects groups(did_type="tolfree") and accepts "tollfree"."""
    pytest.importorskip("mypy")  # the dev extra; CI's other Pythons install only [test]
    program = tmp_path / "typo.py"
    program.write_text(
        "from twochat_async import TwoChatSession\n\n\n"
        "async def search(chat: TwoChatSession) -> None:\n"
        '    await chat.groups("US", did_type="tollfree")\n'
        '    await chat.groups("US", did_type="tolfree")\n'
    )
    result = subprocess.run(  # noqa: S603 - our own interpreter and file
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", str(program)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
        check=False,
    )
    errors = [line for line in result.stdout.splitlines() if ": error:" in line]
    assert len(errors) == 1, result.stdout
    assert errors[0].startswith(f'{program}:6: error: Argument "did_type"')
