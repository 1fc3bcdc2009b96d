"""Pins the exact HTTP request reserve() sends, and TwoChatSession's argument checks."""

from __future__ import annotations

import platform
import re
from datetime import datetime, timezone
from typing import Any

import aiohttp
import pytest
from conftest import API_KEY, BridgedAioresponses
from yarl import URL

import twochat_async
from twochat_async import Reservation, TwoChatSession

RESERVATIONS = "https://api.p.2chat.io/open/numbers/reservations"
DETAILS = {
    "uuid": "reservation-uuid-here",
    "number": "+12135551234",
    "created_at": "2024-01-15T10:30:00Z",
    "expires_at": "2024-01-15T11:30:00Z",
}
SUCCESS = {"success": True, "data": {"reservation_details": DETAILS}}


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Run every test without the SDK's environment variables, whatever the shell has."""
    monkeypatch.delenv("TWOCHAT_API_KEY", raising=False)
    monkeypatch.delenv("TWOCHAT_BASE_URL", raising=False)


def sent(mocked: BridgedAioresponses, url: str = RESERVATIONS) -> dict[str, Any]:
    """Return the keyword arguments of the one POST recorded for ``url``."""
    calls = mocked.requests[("POST", URL(url))]
    assert len(calls) == 1
    kwargs: dict[str, Any] = calls[0].kwargs
    return kwargs


async def reserve_once(
    mocked: BridgedAioresponses,
    *args: Any,
    url: str = RESERVATIONS,
    session_args: tuple[Any, ...] = (API_KEY,),
    **session_kwargs: Any,
) -> dict[str, Any]:
    """Reserve through a mocked 201 and return the request's keyword arguments."""
    mocked.post(url, status=201, payload=SUCCESS)
    async with TwoChatSession(*session_args, **session_kwargs) as chat:
        await chat.reserve(*args)
    return sent(mocked, url)


# --- the request ----------------------------------------------------------------------


async def test_reserve_posts_to_the_default_reservations_url(
    mocked: BridgedAioresponses,
) -> None:
    """reserve() sends exactly one POST to https://api.p.2chat.io/open/numbers/reservations."""
    await reserve_once(mocked, "abc-123")
    assert [("POST", URL(RESERVATIONS))] == list(mocked.requests)


async def test_reserve_returns_the_decoded_reservation(mocked: BridgedAioresponses) -> None:
    """reserve() returns the Reservation of the 201 answer, with the asked group_id."""
    mocked.post(RESERVATIONS, status=201, payload=SUCCESS)
    async with TwoChatSession(API_KEY) as chat:
        reservation = await chat.reserve("abc-123")
    expected = Reservation(
        uuid="reservation-uuid-here",
        number="+12135551234",
        created_at=datetime(2024, 1, 15, 10, 30, tzinfo=timezone.utc),
        expires_at=datetime(2024, 1, 15, 11, 30, tzinfo=timezone.utc),
        group_id="abc-123",
    )
    assert expected == reservation


async def test_reserve_body_without_number(mocked: BridgedAioresponses) -> None:
    """The body is exactly the compact JSON of group_id, and no json= is passed."""
    kwargs = await reserve_once(mocked, "abc-123")
    assert kwargs["data"] == b'{"group_id":"abc-123"}'
    assert kwargs.get("json") is None


async def test_reserve_body_with_number(mocked: BridgedAioresponses) -> None:
    """With a number, the body is exactly group_id then number."""
    kwargs = await reserve_once(mocked, "abc-123", "+12135551234")
    assert kwargs["data"] == b'{"group_id":"abc-123","number":"+12135551234"}'


async def test_reserve_headers(mocked: BridgedAioresponses) -> None:
    """The POST carries the key, JSON type and accept, no compression, the default agent."""
    kwargs = await reserve_once(mocked, "abc-123")
    expected = {
        "X-User-API-Key": API_KEY,
        "Accept": "application/json",
        "Accept-Encoding": "identity",
        "Content-Type": "application/json",
        "User-Agent": (
            f"twochat-async/{twochat_async.__version__} aiohttp/{aiohttp.__version__} "
            f"python/{platform.python_version()}"
        ),
    }
    assert expected == dict(kwargs["headers"])


async def test_default_user_agent_format(mocked: BridgedAioresponses) -> None:
    """The default User-Agent reads twochat-async/<v> aiohttp/<v> python/<v>."""
    kwargs = await reserve_once(mocked, "abc-123")
    pattern = r"twochat-async/\d+\.\d+\S* aiohttp/\d+\.\d+\S* python/\d+\.\d+\.\d+\S*"
    assert re.fullmatch(pattern, kwargs["headers"]["User-Agent"]) is not None


async def test_custom_user_agent(mocked: BridgedAioresponses) -> None:
    """user_agent= replaces the User-Agent header."""
    kwargs = await reserve_once(mocked, "abc-123", user_agent="my-app/2.0")
    assert kwargs["headers"]["User-Agent"] == "my-app/2.0"


async def test_redirects_are_not_followed(mocked: BridgedAioresponses) -> None:
    """The request is sent with allow_redirects=False so the key never leaves base_url."""
    kwargs = await reserve_once(mocked, "abc-123")
    assert kwargs["allow_redirects"] is False


async def test_raise_for_status_is_off(mocked: BridgedAioresponses) -> None:
    """The request disables raise_for_status so 2Chat's error body is read."""
    kwargs = await reserve_once(mocked, "abc-123")
    assert kwargs["raise_for_status"] is False


async def test_custom_base_url_with_trailing_slash(mocked: BridgedAioresponses) -> None:
    """A base_url with a path and a trailing slash is joined without a double slash."""
    url = "https://proxy.example/2chat/open/numbers/reservations"
    await reserve_once(mocked, "abc-123", url=url, base_url="https://proxy.example/2chat/")
    assert [("POST", URL(url))] == list(mocked.requests)


def test_base_url_property_strips_the_trailing_slash() -> None:
    """base_url is kept without its trailing slash."""
    session = TwoChatSession(API_KEY, base_url="http://127.0.0.1:8080/")
    assert session.base_url == "http://127.0.0.1:8080"


def test_base_url_defaults_to_2chat() -> None:
    """Without base_url nor TWOCHAT_BASE_URL, requests go to https://api.p.2chat.io."""
    assert TwoChatSession(API_KEY).base_url == "https://api.p.2chat.io"


# --- environment fallbacks ------------------------------------------------------------


async def test_api_key_from_environment(
    mocked: BridgedAioresponses, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without api_key, TWOCHAT_API_KEY is sent as X-User-API-Key."""
    monkeypatch.setenv("TWOCHAT_API_KEY", "env-key-123")
    kwargs = await reserve_once(mocked, "abc-123", session_args=())
    assert kwargs["headers"]["X-User-API-Key"] == "env-key-123"


async def test_explicit_api_key_wins_over_environment(
    mocked: BridgedAioresponses, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An api_key argument is used even when TWOCHAT_API_KEY is set."""
    monkeypatch.setenv("TWOCHAT_API_KEY", "env-key-123")
    kwargs = await reserve_once(mocked, "abc-123")
    assert kwargs["headers"]["X-User-API-Key"] == API_KEY


async def test_base_url_from_environment(
    mocked: BridgedAioresponses, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without base_url, TWOCHAT_BASE_URL is where requests go."""
    monkeypatch.setenv("TWOCHAT_BASE_URL", "http://localhost:9000/")
    url = "http://localhost:9000/open/numbers/reservations"
    await reserve_once(mocked, "abc-123", url=url)
    assert [("POST", URL(url))] == list(mocked.requests)


def test_explicit_base_url_wins_over_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """A base_url argument is used even when TWOCHAT_BASE_URL is set."""
    monkeypatch.setenv("TWOCHAT_BASE_URL", "http://localhost:9000")
    session = TwoChatSession(API_KEY, base_url="https://other.example")
    assert session.base_url == "https://other.example"


def test_environment_base_url_is_validated(monkeypatch: pytest.MonkeyPatch) -> None:
    """An invalid TWOCHAT_BASE_URL raises ValueError like the argument would."""
    monkeypatch.setenv("TWOCHAT_BASE_URL", "ftp://files.example")
    with pytest.raises(ValueError, match="base_url"):
        TwoChatSession(API_KEY)


# --- the API key ----------------------------------------------------------------------


@pytest.mark.parametrize("kwargs", [{}, {"api_key": None}, {"api_key": ""}])
def test_missing_api_key_names_the_environment_variable(kwargs: dict[str, Any]) -> None:
    """No key from the argument nor the environment raises ValueError naming TWOCHAT_API_KEY."""
    with pytest.raises(ValueError, match="TWOCHAT_API_KEY"):
        TwoChatSession(**kwargs)


def test_empty_environment_key_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    """An empty TWOCHAT_API_KEY counts as no key."""
    monkeypatch.setenv("TWOCHAT_API_KEY", "")
    with pytest.raises(ValueError, match="TWOCHAT_API_KEY"):
        TwoChatSession()


@pytest.mark.parametrize(
    "key",
    [" secret-key-abc", "secret-key-abc ", "secret-key-abc\n", "secret\x00key-abc"],
    ids=["leading-space", "trailing-space", "newline", "nul"],
)
def test_malformed_api_key_is_refused_without_quoting_it(key: str) -> None:
    """A key with spaces or control characters raises ValueError that never shows the key."""
    with pytest.raises(ValueError, match="api_key") as info:
        TwoChatSession(key)
    assert "secret" not in str(info.value)
    assert all("secret" not in str(arg) for arg in info.value.args)


def test_malformed_environment_key_is_not_quoted(monkeypatch: pytest.MonkeyPatch) -> None:
    """A malformed TWOCHAT_API_KEY is refused without showing it."""
    monkeypatch.setenv("TWOCHAT_API_KEY", "secret-env-key ")
    with pytest.raises(ValueError, match="api_key") as info:
        TwoChatSession()
    assert "secret" not in str(info.value)


def test_non_string_api_key_is_refused() -> None:
    """An api_key that is not a str raises ValueError."""
    with pytest.raises(ValueError, match="api_key"):
        TwoChatSession(12345)  # type: ignore[arg-type]


def test_repr_never_shows_the_key() -> None:
    """repr(session) shows base_url and state but never the API key."""
    session = TwoChatSession(API_KEY, base_url="https://api.p.2chat.io")
    assert repr(session) == "<TwoChatSession base_url='https://api.p.2chat.io' open>"
    assert API_KEY not in repr(session)


async def test_repr_of_a_closed_session_never_shows_the_key() -> None:
    """repr(session) after close says closed and still hides the key."""
    session = TwoChatSession(API_KEY)
    await session.close()
    assert repr(session) == "<TwoChatSession base_url='https://api.p.2chat.io' closed>"


# --- invalid arguments send nothing ---------------------------------------------------


@pytest.mark.parametrize(
    ("args", "name"),
    [
        (("",), "group_id"),
        (("   ",), "group_id"),
        (("abc-123", "12135551234"), "number"),
        (("abc-123", "+0123"), "number"),
        (("abc-123", ""), "number"),
    ],
)
async def test_invalid_reserve_arguments_send_no_request(
    mocked: BridgedAioresponses, args: tuple[str, ...], name: str
) -> None:
    """reserve() with an empty group_id or a non-E.164 number raises ValueError, sends nothing."""
    mocked.post(RESERVATIONS, status=201, payload=SUCCESS)
    async with TwoChatSession(API_KEY) as chat:
        with pytest.raises(ValueError, match=name):
            await chat.reserve(*args)
    assert mocked.requests == {}


# --- base_url and timeout validation --------------------------------------------------


@pytest.mark.parametrize(
    "base_url",
    [
        "ftp://api.p.2chat.io",
        "https://",
        "api.p.2chat.io",
        "/open/numbers",
        "https://user:pass@api.p.2chat.io",
        "https://api.p.2chat.io?x=1",
        "https://api.p.2chat.io#frag",
    ],
    ids=["ftp", "no-host", "no-scheme", "path-only", "credentials", "query", "fragment"],
)
def test_invalid_base_url_is_refused(base_url: str) -> None:
    """base_url must be an http(s) URL with a host and no credentials, query or fragment."""
    with pytest.raises(ValueError, match="base_url"):
        TwoChatSession(API_KEY, base_url=base_url)


@pytest.mark.parametrize("timeout", [0, -1, 0.0, "x", True, None, float("nan")])
def test_invalid_timeout_is_refused(timeout: Any) -> None:
    """timeout must be a positive number of seconds (not a bool) or a ClientTimeout."""
    with pytest.raises(ValueError, match="timeout"):
        TwoChatSession(API_KEY, timeout=timeout)


async def test_numeric_timeout_is_sent_as_total(mocked: BridgedAioresponses) -> None:
    """A number of seconds becomes the request's total ClientTimeout."""
    kwargs = await reserve_once(mocked, "abc-123", timeout=7)
    assert aiohttp.ClientTimeout(total=7.0) == kwargs["timeout"]


async def test_client_timeout_is_used_as_given(mocked: BridgedAioresponses) -> None:
    """An aiohttp.ClientTimeout is accepted and applied to the request unchanged."""
    timeout = aiohttp.ClientTimeout(total=12, connect=3, sock_read=5)
    kwargs = await reserve_once(mocked, "abc-123", timeout=timeout)
    assert timeout == kwargs["timeout"]


@pytest.mark.parametrize("max_connections", [0, -1, True, 1.5, "10"])
def test_invalid_max_connections_is_refused(max_connections: Any) -> None:
    """max_connections must be an int of at least 1."""
    with pytest.raises(ValueError, match="max_connections"):
        TwoChatSession(API_KEY, max_connections=max_connections)


@pytest.mark.parametrize(
    "timeout",
    [float("inf"), 10**400, 10**5000],
    ids=["inf", "10**400", "10**5000"],
)
def test_infinite_or_huge_timeout_is_refused(timeout: Any) -> None:
    """An infinite timeout, or an int past a float's range, is a ValueError (no OverflowError)."""
    with pytest.raises(ValueError, match=r"^timeout must be a finite, positive number"):
        TwoChatSession(API_KEY, timeout=timeout)


@pytest.mark.parametrize(
    ("timeout", "field"),
    [
        (aiohttp.ClientTimeout(total=0), "total"),
        (aiohttp.ClientTimeout(total=float("inf")), "total"),
        (aiohttp.ClientTimeout(total=10, connect=-1), "connect"),
        (aiohttp.ClientTimeout(total=10, sock_read=float("nan")), "sock_read"),
        (aiohttp.ClientTimeout(total=10, sock_connect=10**400), "sock_connect"),
        (aiohttp.ClientTimeout(total="30"), "total"),  # type: ignore[arg-type]
    ],
    ids=["total-zero", "total-inf", "connect-negative", "sock-read-nan", "huge", "str"],
)
def test_client_timeout_fields_are_checked(timeout: aiohttp.ClientTimeout, field: str) -> None:
    """Each ClientTimeout field must be None or finite and positive; the bad one is named."""
    with pytest.raises(ValueError, match=rf"^timeout\.{field} must be a finite, positive"):
        TwoChatSession(API_KEY, timeout=timeout)


@pytest.mark.parametrize(
    "http_session",
    [object(), "session", aiohttp.ClientTimeout(total=5)],
    ids=["object", "str", "ClientTimeout"],
)
def test_http_session_that_is_not_a_client_session_is_refused(http_session: Any) -> None:
    """http_session must be an aiohttp.ClientSession: anything else is a ValueError at once."""
    with pytest.raises(ValueError, match=r"^http_session must be an aiohttp.ClientSession"):
        TwoChatSession(API_KEY, http_session=http_session)


@pytest.mark.parametrize(
    "user_agent",
    ["", "   ", "my-app/1.0\r\nX-Evil: 1", "my-app\n", "my\x00app", "my\x7fapp", "café/1.0", 5],
    ids=repr,
)
def test_bad_user_agent_is_refused(user_agent: Any) -> None:
    """user_agent must be non-blank printable ASCII: no CR/LF (header injection), no controls."""
    with pytest.raises(ValueError, match=r"^user_agent must be printable ASCII"):
        TwoChatSession(API_KEY, user_agent=user_agent)


@pytest.mark.parametrize(
    "base_url",
    [
        123,
        "http://[::1",
        "https://api.p.2chat.io/\r\nX-Evil: 1",
        "https://api.p.2chat.io\n",
        "https://api. p.2chat.io",
        "https://\ud800.example",
    ],
    ids=repr,
)
def test_malformed_base_url_is_a_value_error_naming_it(base_url: Any) -> None:
    """A base_url that is not a str, does not parse, or holds whitespace: ValueError naming it."""
    with pytest.raises(ValueError, match=r"^base_url must be an http"):
        TwoChatSession(API_KEY, base_url=base_url)
