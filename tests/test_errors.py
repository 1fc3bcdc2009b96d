"""The error tree: as drawn in the errors module's docstring, and what each error carries."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import get_args

import pytest

from twochat_async import TwoChatSession, _wire, errors
from twochat_async.errors import (
    APIConnectionError,
    APIError,
    InvalidResponseError,
    NotFoundError,
    RateLimitError,
)
from twochat_async.models import DidTypeName
from twochat_async.testing import FakeTwoChat, Reply


def drawn_tree() -> dict[str, str]:
    """Each class of the tree drawn in errors.py's docstring, and its parent there."""
    drawing = (errors.__doc__ or "").split("```text\n")[1].split("```")[0]
    parents: dict[str, str] = {}
    stack: list[tuple[int, str]] = []
    for line in drawing.splitlines():
        match = re.match(r"^([│ ]*(?:[├└]── )?)(\w+Error)\b", line)
        if match is None:
            continue  # a line continuing the description above it
        depth, name = len(match.group(1)), match.group(2)
        while stack and stack[-1][0] >= depth:
            stack.pop()
        parents[name] = stack[-1][1] if stack else "Exception"
        stack.append((depth, name))
    return parents


def test_the_drawing_is_read() -> None:
    """The drawing parser finds the root and a nested leaf (else the test below is vacuous)."""
    tree = drawn_tree()
    assert tree["TwoChatError"] == "Exception"
    assert tree["APITimeoutError"] == "APIConnectionError"
    assert len(tree) == 14


def test_the_classes_are_exactly_the_drawn_tree() -> None:
    """errors.__all__ is the drawn classes, and each derives directly from its drawn parent."""
    tree = drawn_tree()
    assert sorted(tree) == errors.__all__
    actual = {name: getattr(errors, name).__bases__[0].__name__ for name in errors.__all__}
    assert tree == actual
    assert all(len(getattr(errors, name).__bases__) == 1 for name in errors.__all__)


def test_api_error_carries_status_message_body_and_retry_after() -> None:
    """APIError keeps what 2Chat answered; str() shows the status, then the message."""
    error = NotFoundError("unknown group", status=404, body={"error_message": "unknown group"})
    assert (
        error.status,
        error.message,
        error.body,
        error.retry_after,
    ) == (404, "unknown group", {"error_message": "unknown group"}, None)
    assert str(error) == "HTTP 404: unknown group"
    assert APIError("busy", status=486).body is None
    assert RateLimitError("slow", status=429, retry_after=2.5).retry_after == 2.5


def test_connection_error_requires_request_sent() -> None:
    """APIConnectionError (and so APITimeoutError) records whether the request may have gone."""
    assert APIConnectionError("refused", request_sent=False).request_sent is False
    with pytest.raises(TypeError):
        APIConnectionError("refused")  # type: ignore[call-arg]


def test_invalid_response_carries_status_and_body() -> None:
    """InvalidResponseError keeps status and body; body defaults to None."""
    error = InvalidResponseError("bad", status=201, body=[1])
    assert (error.status, error.body, str(error)) == (201, [1], "bad")
    assert InvalidResponseError("bad", status=200).body is None


def test_the_drawn_statuses_are_those_of_the_status_table() -> None:
    """Each class drawn with a 4xx status is the one _wire.error_class gives for it; 5xx too."""
    drawn = dict(re.findall(r"(\w+Error) +(\d{3}|5xx) ", errors.__doc__ or ""))
    table = {cls.__name__: str(status) for status, cls in _wire.STATUS_ERRORS.items()}
    assert {**table, "ServerError": "5xx"} == drawn
    assert _wire.error_class(599).__name__ == "ServerError"


# -- Errors and objects that explain themselves: APIError's request, reprs, DidTypeName ---
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


@pytest.mark.slow
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
    # Incremental, with the project's cache: after `mypy --strict twochat_async ...` (as
    # CI runs it first) this takes half a second instead of ten. The errors of an unchanged
    # file come from the cache, under the path it had then: only the line is checked.
    result = subprocess.run(  # noqa: S603 - our own interpreter and file
        [sys.executable, "-m", "mypy", "--strict", str(program)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
        check=False,
    )
    errors = [line for line in result.stdout.splitlines() if ": error:" in line]
    assert len(errors) == 1, result.stdout
    assert errors[0].split("/")[-1].startswith('typo.py:6: error: Argument "did_type"')
