"""``examples/fastapi_app.py`` does what its docstring says, served by uvicorn over real HTTP.

It needs the ``examples`` extra (FastAPI, uvicorn): CI's main run installs it, and there
``mypy --strict examples`` fails without it, so the skip below cannot hide a missing
install; a run with the ``test`` extra alone skips this module.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import timedelta
from pathlib import Path
from types import ModuleType
from typing import Any

import aiohttp
import pytest
from conftest import API_KEY

from twochat_async import TwoChatSession
from twochat_async.testing import FakeTwoChat, Reply

pytest.importorskip("fastapi", reason="needs the examples extra")
uvicorn = pytest.importorskip("uvicorn", reason="needs the examples extra")

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "fastapi_app.py"


def load() -> ModuleType:
    """Import ``examples/fastapi_app.py`` (the examples are scripts, not a package)."""
    spec = importlib.util.spec_from_file_location("examples_fastapi_app", EXAMPLE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


fastapi_app = load()


@pytest.fixture(autouse=True)
def no_ambient_config(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the developer's own TWOCHAT_* settings out of every test."""
    monkeypatch.delenv("TWOCHAT_API_KEY", raising=False)
    monkeypatch.delenv("TWOCHAT_BASE_URL", raising=False)


@asynccontextmanager
async def serving(app: Any) -> AsyncIterator[str]:
    """Serve ``app`` with uvicorn on 127.0.0.1 (lifespan on); yield its URL; stop it after."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    # log_config=None: leave the test run's logging as it is.
    config = uvicorn.Config(app, lifespan="on", log_config=None, timeout_graceful_shutdown=5)
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        deadline = time.monotonic() + 10
        while not server.started:
            assert not task.done(), "the server stopped while starting"
            assert time.monotonic() < deadline, "the server did not start"
            await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)
        sock.close()


def session_for(fake: FakeTwoChat, **options: Any) -> Callable[[], TwoChatSession]:
    """A factory of sessions pointed at ``fake``; retries off, one scripted reply per call."""
    return lambda: TwoChatSession(
        API_KEY, base_url=fake.base_url, max_retries=0, **{"timeout": 5, **options}
    )


class App:
    """The example app served against the fake, and a client for it."""

    def __init__(self, url: str, http: aiohttp.ClientSession) -> None:
        self.url = url
        self.http = http

    async def call(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any, Any]:
        """Send a request; return its status, its JSON body (or None) and its headers."""
        async with self.http.request(method, self.url + path, **kwargs) as response:
            body = await response.json() if response.content_length else None
            return response.status, body, response.headers

    async def hold(self, **body: Any) -> tuple[int, Any, Any]:
        """POST /numbers/hold."""
        return await self.call("POST", "/numbers/hold", json=body)

    async def purchase(self, uuid: str) -> tuple[int, Any, Any]:
        """POST /numbers/{uuid}/purchase."""
        return await self.call("POST", f"/numbers/{uuid}/purchase")


@asynccontextmanager
async def running(
    factory: Callable[[], AbstractAsyncContextManager[TwoChatSession]],
) -> AsyncIterator[App]:
    """The app made with ``factory``, served until the block ends (its shutdown runs)."""
    async with (
        serving(fastapi_app.create_app(factory)) as url,
        aiohttp.ClientSession() as http,
    ):
        yield App(url, http)


@pytest.fixture
async def app(fake: FakeTwoChat) -> AsyncIterator[App]:
    """The example app, served by uvicorn on 127.0.0.1 against the fake."""
    async with running(session_for(fake)) as served:
        yield served


# -- the routes ----------------------------------------------------------------------------


async def test_hold_answers_201_with_the_reservation(app: App, fake: FakeTwoChat) -> None:
    """POST /numbers/hold reserves in the fake; 201 with uuid, number, group and expiry."""
    status, body, _ = await app.hold(group_id="abc-123")
    assert status == 201
    [held] = fake.active_reservations()
    expected = {
        "uuid": held.uuid,
        "number": held.number,
        "group_id": "abc-123",
        "expires_at": held.expires_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    assert expected == body


async def test_purchase_buys_exactly_the_held_number(app: App, fake: FakeTwoChat) -> None:
    """The purchase buys the reserved number of its group and answers 201 with 2Chat's details."""
    _, held, _ = await app.hold(group_id="abc-123", number="+12135551240")
    status, body, _ = await app.purchase(held["uuid"])
    assert status == 201
    assert fake.sold == {"+12135551240": "abc-123"}
    assert fake.active_reservations() == []
    assert (body["uuid"], body["number"], body["group_id"]) == (
        held["uuid"],
        "+12135551240",
        "abc-123",
    )
    assert body["details"]["message"] == "Number +12135551240 purchased successfully"


async def test_purchase_of_a_uuid_not_held_is_404_and_sends_nothing(
    app: App, fake: FakeTwoChat
) -> None:
    """An unknown uuid, or one already bought, answers 404 without a purchase request."""
    _, held, _ = await app.hold(group_id="abc-123")
    assert (await app.purchase(held["uuid"]))[0] == 201
    for uuid in (held["uuid"], "no-such-uuid"):
        status, body, _ = await app.purchase(uuid)
        assert status == 404
        assert f"No reservation {uuid} is held here" in body["detail"]
    assert fake.calls["POST /open/numbers/purchase"] == 1


async def test_purchase_of_an_expired_reservation_is_410(app: App, fake: FakeTwoChat) -> None:
    """A reservation past its expiry is not bought: 410, no purchase request."""
    fake.reservation_ttl = timedelta(0)
    _, held, _ = await app.hold(group_id="abc-123")
    status, body, _ = await app.purchase(held["uuid"])
    assert status == 410
    assert "reserve again" in body["detail"]
    assert fake.calls["POST /open/numbers/purchase"] == 0
    assert (await app.purchase(held["uuid"]))[0] == 404  # forgotten


async def test_delete_releases_the_reservation(app: App, fake: FakeTwoChat) -> None:
    """DELETE /numbers/{uuid} cancels the reservation in 2Chat: 204, then 404."""
    _, held, _ = await app.hold(group_id="abc-123")
    status, body, _ = await app.call("DELETE", f"/numbers/{held['uuid']}")
    assert (status, body) == (204, None)
    assert fake.active_reservations() == []
    assert fake.calls[f"DELETE /open/numbers/reservations/{held['uuid']}"] == 1
    assert (await app.call("DELETE", f"/numbers/{held['uuid']}"))[0] == 404


# -- errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "expected_status", "in_detail"),
    [
        ({"group_id": "abc-123", "number": "12345"}, 422, "E.164"),
        ({"group_id": ""}, 422, "group_id"),
        ({"group_id": "no-such-group"}, 404, "not found"),
        ({"group_id": "tf-800", "number": "+18005550100"}, 422, "does not allow"),
    ],
    ids=["not-e164", "empty-group", "unknown-group", "no-number-selection"],
)
async def test_hold_maps_refusals_to_client_errors(
    app: App, fake: FakeTwoChat, body: dict[str, Any], expected_status: int, in_detail: str
) -> None:
    """Bad arguments are 422 (nothing sent); an unknown group 404; a group without picking 422."""
    status, answer, _ = await app.hold(**body)
    assert status == expected_status
    assert in_detail in answer["detail"]
    assert fake.active_reservations() == []


async def test_hold_of_a_taken_number_is_409(app: App) -> None:
    """A number already reserved cannot be reserved again: 2Chat's 422 becomes 409."""
    assert (await app.hold(group_id="abc-123", number="+12135551234"))[0] == 201
    status, body, _ = await app.hold(group_id="abc-123", number="+12135551234")
    assert status == 409
    assert "not available" in body["detail"]


async def test_hold_without_a_json_body_is_fastapis_422(app: App) -> None:
    """A body without group_id is refused by FastAPI's own validation, before the SDK."""
    status, body, _ = await app.hold(number="+12135551234")
    assert status == 422
    assert body["detail"][0]["loc"] == ["body", "group_id"]


@pytest.mark.parametrize(
    ("reply", "expected_status", "in_detail"),
    [
        (Reply(status=401), 503, "cannot reserve numbers right now"),
        (Reply(status=402), 503, "cannot reserve numbers right now"),
        (Reply(status=403), 503, "cannot reserve numbers right now"),
        (Reply(status=409), 503, "starting up"),
        (Reply(status=500), 502, "may be reserved"),
        (Reply(status=503), 502, "may be reserved"),
        (Reply(status=400), 502, "could not reserve"),
        (Reply(fault="drop"), 502, "may be reserved"),
        (Reply(fault="truncate"), 502, "may be reserved"),
    ],
    ids=["401", "402", "403", "409", "500", "503", "400", "drop", "truncate"],
)
async def test_hold_maps_2chat_failures_to_server_errors(
    app: App, fake: FakeTwoChat, reply: Reply, expected_status: int, in_detail: str
) -> None:
    """A broken account is 503, 2Chat booting 503, 2Chat failing 502: never the caller's fault."""
    fake.script(reply)
    status, body, _ = await app.hold(group_id="abc-123")
    assert status == expected_status
    assert in_detail in body["detail"]


async def test_rate_limit_is_429_with_retry_after(app: App, fake: FakeTwoChat) -> None:
    """2Chat's 429 with Retry-After: 120 (too long to wait) answers 429, Retry-After: 120."""
    fake.script(Reply(status=429, headers={"Retry-After": "120"}))
    status, _, headers = await app.hold(group_id="abc-123")
    assert (status, headers["Retry-After"]) == (429, "120")


async def test_2chat_echoing_the_key_answers_without_it(app: App, fake: FakeTwoChat) -> None:
    """A 2Chat error that quotes the API key reaches the caller without it."""
    fake.script(Reply(status=404, json={"success": False, "error_message": f"no {API_KEY}"}))
    async with app.http.post(app.url + "/numbers/hold", json={"group_id": "abc-123"}) as r:
        assert r.status == 404
        text = await r.text()
    assert API_KEY not in text
    assert "***" in text


async def test_a_wrong_key_is_503_not_the_callers_fault(fake: FakeTwoChat) -> None:
    """With a key 2Chat refuses (a real 401 of the fake), the app answers 503."""

    def factory() -> TwoChatSession:
        return TwoChatSession("wrong-key", base_url=fake.base_url)

    async with running(factory) as served:
        status, body, _ = await served.hold(group_id="abc-123")
    assert status == 503
    assert "wrong-key" not in body["detail"]


async def test_reserve_timeout_is_504_telling_to_check(fake: FakeTwoChat) -> None:
    """No answer within the session's timeout: 504, saying the number may be reserved."""
    async with running(session_for(fake, timeout=0.3)) as served:
        fake.script(Reply(fault="hang"))
        status, body, _ = await served.hold(group_id="abc-123")
    assert status == 504
    assert "may be reserved" in body["detail"]


async def test_purchase_refused_keeps_the_hold_for_a_retry(app: App, fake: FakeTwoChat) -> None:
    """A purchase 2Chat refuses (422 → 409) bought nothing: the same uuid buys on retry."""
    _, held, _ = await app.hold(group_id="abc-123")
    fake.script(Reply(status=422))
    assert (await app.purchase(held["uuid"]))[0] == 409
    assert fake.sold == {}
    assert (await app.purchase(held["uuid"]))[0] == 201
    assert fake.sold == {held["number"]: "abc-123"}


async def test_a_second_purchase_while_one_is_in_flight_is_409(app: App, fake: FakeTwoChat) -> None:
    """Two purchases of one reservation at once: one request to 2Chat, one 201, one 409."""
    _, held, _ = await app.hold(group_id="abc-123")
    fake.script(Reply(handle=True, delay=0.3, status=201, json={"success": True}))
    first = asyncio.ensure_future(app.purchase(held["uuid"]))
    await fake.received("POST /open/numbers/purchase")  # the first one is in flight
    assert not first.done()
    status, body, _ = await app.purchase(held["uuid"])
    assert (status, (await first)[0]) == (409, 201)
    assert "in progress" in body["detail"]
    assert fake.calls["POST /open/numbers/purchase"] == 1


@pytest.mark.parametrize(
    ("reply", "expected_status"),
    [
        (Reply(fault="drop", handle=True), 502),
        (Reply(status=502, handle=True), 502),
        (Reply(handle=True, delay=2), 504),
    ],
    ids=["dropped", "bad-gateway", "timeout"],
)
async def test_purchase_with_an_unknown_outcome_says_check_and_is_not_resent(
    fake: FakeTwoChat, reply: Reply, expected_status: int
) -> None:
    """2Chat buys but the answer is lost: 502/504 saying check; never resent nor cancelled."""
    async with running(session_for(fake, timeout=0.5)) as served:
        _, held, _ = await served.hold(group_id="abc-123")
        fake.script(reply)
        status, body, _ = await served.purchase(held["uuid"])
        assert status == expected_status
        assert "may be bought" in body["detail"]
        assert "Check" in body["detail"]
        assert fake.sold == {held["number"]: "abc-123"}  # it did go through
        status, body, _ = await served.purchase(held["uuid"])
        assert status == 409
        assert "unknown" in body["detail"]
    assert fake.calls["POST /open/numbers/purchase"] == 1
    assert not any(call.startswith("DELETE") for call in fake.calls)


# -- the lifespan --------------------------------------------------------------------------


async def test_one_session_made_at_start_up_and_closed_at_shutdown(fake: FakeTwoChat) -> None:
    """The factory runs once at start-up; every request uses that session; shutdown closes it."""
    made: list[TwoChatSession] = []

    def factory() -> TwoChatSession:
        made.append(session_for(fake)())
        return made[-1]

    async with running(factory) as served:
        assert len(made) == 1
        for _ in range(2):
            assert (await served.hold(group_id="abc-123"))[0] == 201
        assert len(made) == 1
        assert not made[0].closed
    assert made[0].closed
    assert fake.calls["POST /open/numbers/reservations"] == 2


async def test_shutdown_cancels_what_was_reserved_and_not_bought(fake: FakeTwoChat) -> None:
    """Two numbers held, one bought: stopping the server cancels the other one only."""
    async with running(session_for(fake)) as served:
        _, bought, _ = await served.hold(group_id="abc-123")
        _, left, _ = await served.hold(group_id="nyc-212")
        assert (await served.purchase(bought["uuid"]))[0] == 201
        assert [r.uuid for r in fake.active_reservations()] == [left["uuid"]]
    assert fake.active_reservations() == []
    assert fake.sold == {bought["number"]: "abc-123"}
    assert [c for c in fake.calls if c.startswith("DELETE")] == [
        f"DELETE /open/numbers/reservations/{left['uuid']}"
    ]


# -- as a script ----------------------------------------------------------------------------


def free_port() -> int:
    """A port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.mark.slow
async def test_script_serves_until_sigint_and_exits_0() -> None:
    """`fastapi_app.py --fake --port P` holds and buys a number, then exits 0 on SIGINT."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TWOCHAT_")}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(EXAMPLE),
        "--fake",
        "--port",
        str(port),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**env, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stderr is not None
        line = b""
        while b"Uvicorn running on" not in line:
            line = await asyncio.wait_for(proc.stderr.readline(), 15)
            assert line, "the script ended before serving"
        async with aiohttp.ClientSession() as http:
            url = f"http://127.0.0.1:{port}/numbers"
            async with http.post(f"{url}/hold", json={"group_id": "abc-123"}) as r:
                assert r.status == 201
                held = await r.json()
            async with http.post(f"{url}/{held['uuid']}/purchase") as r:
                assert r.status == 201
                assert (await r.json())["number"] == "+12135551234"
        proc.send_signal(signal.SIGINT)
        _, err = await asyncio.wait_for(proc.communicate(), 15)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0
    assert b"Traceback" not in err
    assert b"Application shutdown complete" in err


def test_without_a_key_or_fake_exits_2_naming_the_variable(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Without TWOCHAT_API_KEY and without --fake, it exits 2 and says what to set."""
    assert fastapi_app.main([]) == 2
    assert "TWOCHAT_API_KEY" in capsys.readouterr().err


# -- docs/fastapi.md -----------------------------------------------------------------------


@pytest.mark.slow
def test_the_pages_test_passes_as_written(tmp_path: Path) -> None:
    """docs/fastapi.md's test (a "py" block) passes under pytest, importing the example."""
    page = (ROOT / "docs" / "fastapi.md").read_text()
    [code] = re.findall(r"^```py\n(.*?)^```", page, re.M | re.S)
    (tmp_path / "test_page.py").write_text(code)
    (tmp_path / "pytest.ini").write_text(
        "[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n"
        "filterwarnings = error\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("TWOCHAT_")}
    result = subprocess.run(  # noqa: S603 - our own interpreter and page
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**env, "PYTHONPATH": str(EXAMPLE.parent)},
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout
