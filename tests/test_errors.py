"""The error tree: as drawn in the errors module's docstring, and what each error carries."""

from __future__ import annotations

import concurrent.futures
import copy
import logging
import multiprocessing
import pickle
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import get_args

import crossing
import pytest
from conftest import envelope

from twochat_async import TwoChatSession, _wire, errors
from twochat_async._wire import ArgumentError
from twochat_async.errors import (
    APIConnectionError,
    APIError,
    InvalidResponseError,
    NotFoundError,
    RateLimitError,
    ServerError,
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
        assert isinstance(await chat.groups("US", region_id=123, did_type=name), list)


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


# -- Errors cross a process: pickle, copy and deepcopy keep type, message, attributes -------


STATUSES = {cls: status for status, cls in _wire.STATUS_ERRORS.items()}
STATUSES |= {ServerError: 503, APIError: 486}


def representative(cls: type[Exception]) -> Exception:
    """An instance of ``cls`` with every attribute set to something other than its default."""
    if issubclass(cls, APIError):
        status = STATUSES[cls]
        body = {"success": False, "error_message": "no", "details": [1, {"n": None}]}
        return cls(
            "no", status=status, body=body, retry_after=2.5, method="POST", path="/open/numbers"
        )
    if issubclass(cls, APIConnectionError):
        return cls("connection lost", request_sent=True)
    if cls is InvalidResponseError:
        return cls("not JSON", status=200, body="<html>")
    if cls is ArgumentError:
        return cls("base_url", "must be https.", "allow_insecure_http")
    return cls("the session is closed")


ERROR_CLASSES = [getattr(errors, name) for name in errors.__all__] + [ArgumentError]


def _pickled(protocol: int) -> Callable[[Exception], Exception]:
    return lambda error: pickle.loads(pickle.dumps(error, protocol))  # noqa: S301 - our own


CROSSINGS = {
    **{f"pickle {p}": _pickled(p) for p in range(pickle.HIGHEST_PROTOCOL + 1)},
    "copy": copy.copy,
    "deepcopy": copy.deepcopy,
}


@pytest.mark.parametrize("how", CROSSINGS)
@pytest.mark.parametrize("cls", ERROR_CLASSES, ids=lambda cls: cls.__name__)
def test_every_error_survives_pickle_copy_and_deepcopy(cls: type[Exception], how: str) -> None:
    """The copy has the exact type, the same str(), args and attributes (all of them)."""
    error = representative(cls)
    error.__cause__ = OSError("the cause")
    crossed = CROSSINGS[how](error)
    assert type(crossed) is cls
    assert crossed is not error
    assert (str(crossed), crossed.args) == (str(error), error.args)
    assert vars(crossed) == vars(error)
    assert crossed.__cause__ is None  # the chain stays behind, as pickle leaves it
    if cls is not errors.TwoChatError:
        assert vars(crossed), "the attributes are compared, not two empty dicts"


def test_the_attributes_compared_are_the_documented_ones() -> None:
    """vars() of the representatives holds the attributes errors.py documents."""
    assert sorted(vars(representative(NotFoundError))) == [
        "body",
        "message",
        "method",
        "path",
        "retry_after",
        "status",
    ]
    assert sorted(vars(representative(errors.APITimeoutError))) == ["request_sent"]
    assert sorted(vars(representative(InvalidResponseError))) == ["body", "status"]
    assert sorted(vars(representative(ArgumentError))) == ["allowed_by", "argument", "problem"]


SECRET_ECHOES = {
    "error body": Reply(
        422, json={**envelope(f"bad number for {API_KEY}"), "echo": {"key": API_KEY}}
    ),
    "rate limit body": Reply(
        429, json=envelope(f"slow down {API_KEY}"), headers={"Retry-After": "90"}
    ),
    "undecodable success": Reply(
        200, body=f"<html>{API_KEY}</html>".encode(), content_type="text/html"
    ),
}


@pytest.mark.parametrize("case", SECRET_ECHOES)
async def test_a_pickled_error_holds_no_piece_of_the_key(
    fake: FakeTwoChat, chat: TwoChatSession, case: str
) -> None:
    """An error built from an answer echoing the key pickles without any 12-character piece."""
    fake.script(SECRET_ECHOES[case])
    with pytest.raises((APIError, InvalidResponseError)) as info:
        await chat.reserve("abc-123")
    pieces = [API_KEY[i : i + 12] for i in range(len(API_KEY) - 11)]
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        dumped = pickle.dumps(info.value, protocol).decode("latin-1")
        assert "***" in dumped, "the scrubbed body is in the pickle"
        assert [piece for piece in pieces if piece in dumped] == []


@pytest.mark.slow
def test_errors_raised_in_a_worker_process_reach_the_parent_whole() -> None:
    """A ProcessPoolExecutor (spawned workers) hands back the exact error and its attributes."""
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=context) as pool:
        limited = pool.submit(crossing.reserve_in_child, "rate limited")
        dropped = pool.submit(crossing.reserve_in_child, "dropped")
        with pytest.raises(RateLimitError) as rate:
            limited.result(timeout=60)
        with pytest.raises(APIConnectionError) as connection:
            dropped.result(timeout=60)
    assert (rate.value.status, rate.value.retry_after) == (429, 120.0)
    assert (rate.value.method, rate.value.path) == ("POST", "/open/numbers/reservations")
    assert type(connection.value) is APIConnectionError
    assert connection.value.request_sent is True


# -- Errors show the text they quote with control characters escaped ---------------------

#: Text a hostile or broken server could put into error_message: a CR that rewinds the
#: line, a forged log line after LF, an ANSI erase, OSC 52 (write the clipboard), a bidi
#: override, a C1 control, a line separator, a NUL.
HOSTILE = (
    "Reservation gone\r\n2026-01-01 INFO purchased +12135551234\x1b[2K"
    "\x1b]52;c;ZXZpbA==\x07\u202eevil\x85\u2028\x00"
)
ESCAPED = (
    "Reservation gone\\r\\n2026-01-01 INFO purchased +12135551234\\x1b[2K"
    "\\x1b]52;c;ZXZpbA==\\x07\\u202eevil\\x85\\u2028\\x00"
)


async def test_str_of_an_api_error_escapes_2chats_control_characters(
    fake: FakeTwoChat, chat: TwoChatSession
) -> None:
    """2Chat's error_message with CR/LF, ESC, OSC 52... shows escaped; .message keeps it raw."""
    fake.script(Reply(status=404, json=envelope(HOSTILE)))
    with pytest.raises(NotFoundError) as info:
        await chat.reserve("abc-123")
    assert str(info.value) == f"HTTP 404 (POST /open/numbers/reservations): {ESCAPED}"
    assert info.value.message == HOSTILE  # the attribute is 2Chat's own text
    assert info.value.body["error_message"] == HOSTILE


async def test_a_logged_api_error_forges_no_line(
    fake: FakeTwoChat, chat: TwoChatSession, caplog: pytest.LogCaptureFixture
) -> None:
    """logger.exception() of the error, traceback included, holds no control character."""
    fake.script(Reply(status=500, json=envelope(HOSTILE)))
    try:
        await chat.reserve("abc-123")
    except ServerError:
        logging.getLogger("test.app").exception("reserve failed")
    text = caplog.text
    assert set(text) & {char for char, _ in CONTROLS} == {"\n"}  # the log's own line ends, no other
    assert text.splitlines()[-1] == (
        f"twochat_async.errors.ServerError: HTTP 500 (POST /open/numbers/reservations): {ESCAPED}"
    )


@pytest.mark.parametrize("cls", ERROR_CLASSES[:-1], ids=lambda cls: cls.__name__)
def test_every_error_shows_its_message_escaped(cls: type[Exception]) -> None:
    """str() of each error of the tree has no control character left."""
    # (ArgumentError quotes values with repr(): tests/test_arguments.py.)
    error = representative(cls)
    error.args = (HOSTILE, *error.args[1:])
    if isinstance(error, APIError):
        error.message = HOSTILE
    shown = str(error)
    assert ESCAPED in shown
    assert errors.escape_controls(shown) == shown
    assert shown.isprintable()


#: Each character escape_controls escapes, as its range's ends and a middle point.
CONTROLS = [
    ("\x00", "\\x00"),
    ("\t", "\\t"),
    ("\n", "\\n"),
    ("\r", "\\r"),
    ("\x07", "\\x07"),
    ("\x1b", "\\x1b"),
    ("\x1f", "\\x1f"),
    ("\x7f", "\\x7f"),
    ("\x80", "\\x80"),
    ("\x9b", "\\x9b"),  # CSI, the one-character ESC [
    ("\x9f", "\\x9f"),
    ("\u061c", "\\u061c"),
    ("\u200e", "\\u200e"),
    ("\u200f", "\\u200f"),
    ("\u2028", "\\u2028"),
    ("\u2029", "\\u2029"),
    ("\u202a", "\\u202a"),
    ("\u202e", "\\u202e"),
    ("\u2066", "\\u2066"),
    ("\u2069", "\\u2069"),
    ("\ud800", "\\ud800"),
    ("\udfff", "\\udfff"),
]


@pytest.mark.parametrize(("char", "escaped"), CONTROLS, ids=lambda c: repr(c)[1:-1])
def test_escape_controls_writes_each_control_as_its_escape(char: str, escaped: str) -> None:
    """A control character inside text becomes the text of its escape, as repr() writes it."""
    assert errors.escape_controls(f"a{char}b{char}") == f"a{escaped}b{escaped}"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "Reservation abc not found",
        "São Paulo, Zürich, Łódź",
        "東京 / القاهرة / Москва",
        "👨\u200d👩\u200d👧 family",  # zero-width joiners hold the emoji together
        "C:\\path\\x1b is text",  # a backslash, even before 'x1b', is left alone
        "a\u00a0b",  # a no-break space is printable text
    ],
)
def test_escape_controls_leaves_other_text_as_it_is(text: str) -> None:
    """Accents, other scripts, emoji and backslashes come back unchanged (the same object)."""
    assert errors.escape_controls(text) is text


def test_escape_controls_escapes_the_whole_control_ranges() -> None:
    """Every C0 and C1 control and DEL is escaped; the printable neighbours are not."""
    for code in [*range(0x20), *range(0x7F, 0xA0)]:
        escaped = errors.escape_controls(chr(code))
        assert escaped.isprintable()
        assert escaped.isascii()
        assert escaped.startswith("\\")
    assert errors.escape_controls(" ~\xa0") == " ~\xa0"


def test_escaping_twice_changes_nothing() -> None:
    """Escaped text has nothing left to escape: the CLI may escape a message again."""
    once = errors.escape_controls(HOSTILE)
    assert errors.escape_controls(once) is once
