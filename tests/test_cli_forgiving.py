"""The ``twochat`` command as a shell user meets it, run as a real process each time."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from typing import Any

import pytest

from twochat_async.testing import FakeTwoChat

API_KEY = "test-secret-key-0123456789"


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
    assert err.endswith("Use https, or pass --allow-insecure-http.\n")
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
    assert "Check --base-url, your network and any proxy." in err
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


@pytest.mark.parametrize("answer", [b"y\n", b"yes\n", b"Y\n"])
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


@pytest.mark.parametrize("answer", [b"\n", b"n\n", b"sure\n", b""])
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
