"""The programs in ``examples/`` do what their docstrings say, in-process and as scripts."""

from __future__ import annotations

import asyncio
import importlib.util
import io
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from types import ModuleType

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from conftest import API_KEY, fake_in_thread

from twochat_async import Reservation, TwoChatSession
from twochat_async.testing import FakeTwoChat, Reply

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def load(name: str) -> ModuleType:
    """Import ``examples/<name>.py`` (the examples are scripts, not a package)."""
    spec = importlib.util.spec_from_file_location(f"examples_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


web_backend = load("web_backend")
many_groups = load("many_groups")
bot = load("bot")


@pytest.fixture(autouse=True)
def no_ambient_config(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the developer's own TWOCHAT_* settings out of every test."""
    monkeypatch.delenv("TWOCHAT_API_KEY", raising=False)
    monkeypatch.delenv("TWOCHAT_BASE_URL", raising=False)


def script_env(**extra: str) -> dict[str, str]:
    """The environment of an example run as a script: no TWOCHAT_* unless given."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TWOCHAT_")}
    return {**env, "PYTHONUNBUFFERED": "1", **extra}


def free_port() -> int:
    """A port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until(condition: Callable[[], object], timeout: float = 10.0) -> None:
    """Poll ``condition()`` until true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.02)


# -- web_backend ---------------------------------------------------------------------------


Client = TestClient[web.Request, web.Application]


@pytest.fixture
async def client(fake: FakeTwoChat) -> AsyncIterator[Client]:
    """A real HTTP client for the web backend, served on 127.0.0.1 against the fake."""
    app = web_backend.create_app(lambda: TwoChatSession(API_KEY, base_url=fake.base_url))
    async with TestClient(TestServer(app)) as test_client:
        yield test_client


async def test_web_hold_answers_201_with_the_reservation(client: Client, fake: FakeTwoChat) -> None:
    """POST /numbers/hold reserves in the fake and answers 201 with uuid, number, group, expiry."""
    response = await client.post("/numbers/hold", json={"group_id": "abc-123"})
    assert response.status == 201
    body = await response.json()
    [held] = fake.active_reservations()
    expected = {
        "uuid": held.uuid,
        "number": held.number,
        "group_id": "abc-123",
        "expires_at": held.expires_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    assert expected == body


async def test_web_hold_reserves_the_number_asked_for(client: Client, fake: FakeTwoChat) -> None:
    """A given number is the one reserved."""
    response = await client.post(
        "/numbers/hold", json={"group_id": "abc-123", "number": "+12135551240"}
    )
    assert response.status == 201
    assert (await response.json())["number"] == "+12135551240"
    assert [r.number for r in fake.active_reservations()] == ["+12135551240"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"group_id": "abc-123", "number": "12345"}, "E.164"),
        ({"number": "+12135551234"}, "group_id must be a string"),
        (["abc-123"], "JSON object"),
        ("not json", "JSON object"),
    ],
)
async def test_web_bad_request_is_400_and_sends_nothing(
    client: Client,
    fake: FakeTwoChat,
    body: object,
    message: str,
) -> None:
    """A bad number or body answers 400 with the reason, and reaches no 2Chat endpoint."""
    if isinstance(body, str):
        response = await client.post("/numbers/hold", data=body)
    else:
        response = await client.post("/numbers/hold", json=body)
    assert response.status == 400
    assert message in (await response.json())["error"]
    assert fake.requests == []


async def test_web_unknown_group_is_404(
    client: Client,
) -> None:
    """An unknown group answers 404 with 2Chat's message."""
    response = await client.post("/numbers/hold", json={"group_id": "no-such-group"})
    assert response.status == 404
    assert await response.json() == {"error": "Number group no-such-group not found"}


async def test_web_unavailable_number_is_409(
    client: Client,
) -> None:
    """Reserving a number already held answers 409."""
    body = {"group_id": "abc-123", "number": "+12135551234"}
    assert (await client.post("/numbers/hold", json=body)).status == 201
    response = await client.post("/numbers/hold", json=body)
    assert response.status == 409
    assert "not available" in (await response.json())["error"]


async def test_web_other_failures_are_502_without_the_key(
    client: Client, fake: FakeTwoChat
) -> None:
    """A 2Chat 500 (echoing the key) answers 502 with a JSON error that never holds the key."""
    fake.script(Reply(status=500, json={"success": False, "error_message": f"bad {API_KEY}"}))
    response = await client.post("/numbers/hold", json={"group_id": "abc-123"})
    assert response.status == 502
    text = await response.text()
    assert API_KEY not in text
    assert list(await response.json()) == ["error"]


async def test_web_one_session_made_at_start_up_and_closed_at_clean_up(
    fake: FakeTwoChat,
) -> None:
    """The factory runs once at start-up; every request uses that session; clean-up closes it."""
    made: list[TwoChatSession] = []

    def factory() -> TwoChatSession:
        made.append(TwoChatSession(API_KEY, base_url=fake.base_url))
        return made[-1]

    app = web_backend.create_app(factory)
    assert made == []
    async with TestClient(TestServer(app)) as test_client:
        assert len(made) == 1
        for _ in range(2):
            response = await test_client.post("/numbers/hold", json={"group_id": "abc-123"})
            assert response.status == 201
        assert len(made) == 1
        assert app[web_backend.CHAT] is made[0]
        assert not made[0].closed
    assert made[0].closed
    assert fake.calls["POST /open/numbers/reservations"] == 2


@pytest.mark.slow
async def test_web_script_serves_until_sigint_and_exits_0() -> None:
    """`web_backend.py --fake --port P` answers a POST, then exits 0 cleanly on SIGINT."""
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(EXAMPLES / "web_backend.py"),
        "--fake",
        "--port",
        str(port),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=script_env(),
    )
    try:
        assert proc.stdout is not None
        ready = await asyncio.wait_for(proc.stdout.readline(), 10)
        assert f"http://127.0.0.1:{port}" in ready.decode()
        async with (
            aiohttp.ClientSession() as http,
            http.post(f"http://127.0.0.1:{port}/numbers/hold", json={"group_id": "abc-123"}) as r,
        ):
            assert r.status == 201
            assert (await r.json())["number"] == "+12135551234"
        proc.send_signal(signal.SIGINT)
        _, err = await asyncio.wait_for(proc.communicate(), 10)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0
    assert b"Traceback" not in err


# -- many_groups ---------------------------------------------------------------------------

PROGRESS = re.compile(r"\[(\d+)/(\d+)\] reserved (\+\d+) in group (\S+)")


def test_many_groups_fake_prints_progress_and_leaves_nothing(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`--fake --groups 5` prints one progress line per group, then 0 reservations left."""
    assert many_groups.main(["--fake", "--groups", "5", "--rate", "6000"]) == 0
    lines = capsys.readouterr().out.splitlines()
    progress = [PROGRESS.fullmatch(line) for line in lines[:-1]]
    assert all(progress), lines
    assert sorted(int(m[1]) for m in progress if m) == [1, 2, 3, 4, 5]
    assert {m[2] for m in progress if m} == {"5"}
    assert sorted(m[4] for m in progress if m) == ["g-1", "g-2", "g-3", "g-4", "g-5"]
    assert re.fullmatch(
        r"Reserved 5 of 5 numbers in [\d.]+ s; cancelled 5; 0 active reservations left\.",
        lines[-1],
    )


def test_many_groups_requests_are_paced_by_the_rate_limit() -> None:
    """At 600/min the 5 reserves, 5 cancels and 1 listing go out 0.1 s apart: >= 1.0 s."""
    groups, rate = 5, 600
    started = time.monotonic()
    argv = ["--fake", "--groups", str(groups), "--rate", str(rate)]
    assert many_groups.main(argv, io.StringIO()) == 0
    elapsed = time.monotonic() - started
    # 2N+1 requests paced one per 60/rate s, the first at once.
    assert elapsed >= 2 * groups * 60 / rate - 0.01


async def test_many_groups_cancels_the_others_when_a_group_fails(
    chat: TwoChatSession, fake: FakeTwoChat
) -> None:
    """An unknown group is reported, and the other groups' reservations are all cancelled."""
    out = io.StringIO()
    failed = await many_groups.reserve_and_cancel(chat, ["abc-123", "nope", "nyc-212"], out)
    assert failed == 1
    assert fake.active_reservations() == []
    assert sum(k.startswith("DELETE ") for k in fake.calls.elements()) == 2
    assert "failed in group nope: HTTP 404" in out.getvalue()
    assert "Reserved 2 of 3 numbers" in out.getvalue()


async def test_many_groups_cancels_everything_before_raising_a_bad_argument(
    chat: TwoChatSession, fake: FakeTwoChat
) -> None:
    """A ValueError (an empty group id) is raised only once the good reservations are cancelled."""
    with pytest.raises(ValueError, match="group_id"):
        await many_groups.reserve_and_cancel(chat, ["abc-123", "", "nyc-212"], io.StringIO())
    assert fake.calls["POST /open/numbers/reservations"] == 2
    assert fake.active_reservations() == []


@pytest.mark.slow
def test_many_groups_script_runs_on_a_fresh_machine() -> None:
    """`python examples/many_groups.py --fake --groups 10 --rate 6000` exits 0, 10 lines."""
    argv = [sys.executable, str(EXAMPLES / "many_groups.py")]
    result = subprocess.run(  # noqa: S603 - our own interpreter and example
        [*argv, "--fake", "--groups", "10", "--rate", "6000"],
        capture_output=True,
        text=True,
        timeout=30,
        env=script_env(),
        check=False,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 11
    assert lines[-1].endswith("cancelled 10; 0 active reservations left.")


# -- bot -----------------------------------------------------------------------------------


def answers_of(*items: str) -> asyncio.Queue[str]:
    """A queue already holding the user's answers."""
    queue: asyncio.Queue[str] = asyncio.Queue()
    for item in items:
        queue.put_nowait(item)
    return queue


async def test_bot_buys_on_yes_and_releases_on_no(chat: TwoChatSession, fake: FakeTwoChat) -> None:
    """Answers yes then no: the first number offered is bought, the second released."""
    offered: list[Reservation] = []
    out = io.StringIO()
    tally = await bot.run(
        chat,
        "abc-123",
        answers_of("yes", "no"),
        asyncio.Event(),
        rounds=2,
        offer=offered.append,
        out=out,
    )
    assert (tally.rounds, tally.bought, tally.released, tally.failed) == (2, 1, 1, 0)
    assert fake.sold == {offered[0].number: "abc-123"}
    assert fake.active_reservations() == []
    assert fake.calls["POST /open/numbers/purchase"] == 1
    assert f"released {offered[1].number} (no)" in out.getvalue()


async def test_bot_stop_while_holding_releases_the_number(
    chat: TwoChatSession, fake: FakeTwoChat
) -> None:
    """Setting the stop event while a number is on offer ends the run and cancels the hold."""
    stop, offered = asyncio.Event(), asyncio.Event()
    out = io.StringIO()
    worker = asyncio.create_task(
        bot.run(
            chat,
            "abc-123",
            answers_of(),
            stop,
            answer_timeout=30,
            offer=lambda _: offered.set(),
            out=out,
        )
    )
    await asyncio.wait_for(offered.wait(), 5)
    assert len(fake.active_reservations()) == 1
    stop.set()
    tally = await asyncio.wait_for(worker, 5)
    assert (tally.rounds, tally.bought, tally.released) == (1, 0, 1)
    assert fake.active_reservations() == []
    assert fake.sold == {}
    assert "(stopping)" in out.getvalue()


async def test_bot_releases_when_the_user_never_answers(
    chat: TwoChatSession, fake: FakeTwoChat
) -> None:
    """No answer within answer_timeout: the number is released, nothing bought."""
    out = io.StringIO()
    tally = await bot.run(
        chat, "abc-123", answers_of(), asyncio.Event(), rounds=1, answer_timeout=0.05, out=out
    )
    assert (tally.bought, tally.released) == (0, 1)
    assert fake.active_reservations() == []
    assert "(timeout)" in out.getvalue()


async def test_bot_survives_failed_rounds(chat: TwoChatSession, fake: FakeTwoChat) -> None:
    """A round 2Chat refuses is counted and retried; the worker does not crash."""
    out = io.StringIO()
    tally = await bot.run(
        chat, "no-such-group", answers_of(), asyncio.Event(), rounds=2, retry_delay=0, out=out
    )
    assert (tally.rounds, tally.failed, tally.bought) == (2, 2, 0)
    assert out.getvalue().count("failed: HTTP 404") == 2


@pytest.mark.slow
def test_bot_script_fake_rounds_2_exits_0() -> None:
    """`python examples/bot.py --fake --rounds 2` offers two numbers and exits 0."""
    result = subprocess.run(  # noqa: S603 - our own interpreter and example
        [sys.executable, str(EXAMPLES / "bot.py"), "--fake", "--rounds", "2"],
        capture_output=True,
        text=True,
        timeout=30,
        env=script_env(),
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("offering +1213555") == 2
    assert re.search(r"Stopped after 2 round\(s\): (\d) bought, (\d) released", result.stdout)


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_bot_script_signal_releases_the_hold_and_exits_0(sig: signal.Signals) -> None:
    """A signal to the running script releases the number on offer (seen by 2Chat); exit 0."""
    with fake_in_thread() as fake:
        proc = subprocess.Popen(  # noqa: S603 - our own interpreter and example
            [sys.executable, str(EXAMPLES / "bot.py"), "abc-123"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=script_env(TWOCHAT_API_KEY=API_KEY, TWOCHAT_BASE_URL=fake.base_url),
        )
        try:
            wait_until(lambda: fake.active_reservations() or proc.poll() is not None)
            proc.send_signal(sig)
            out, err = proc.communicate(timeout=10)
        finally:
            if proc.returncode is None:
                proc.kill()
                proc.communicate()
        assert proc.returncode == 0, err
        assert fake.active_reservations() == []
        assert fake.calls["POST /open/numbers/reservations"] == 1
    assert "released +12135551234 (stopping)" in out
    assert "Stopped after 1 round(s): 0 bought, 1 released, 0 failed." in out


# -- every example -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("module", "argv"),
    [(web_backend, []), (many_groups, ["g-1"]), (bot, ["g-1"])],
    ids=["web_backend", "many_groups", "bot"],
)
def test_without_a_key_or_fake_exits_2_naming_the_variable(
    module: ModuleType, argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """Without TWOCHAT_API_KEY and without --fake, each example exits 2 and says what to set."""
    try:
        status = module.main(argv)
    except SystemExit as exc:  # argparse's parser.error
        status = exc.code
    assert status == 2
    assert "TWOCHAT_API_KEY" in capsys.readouterr().err
