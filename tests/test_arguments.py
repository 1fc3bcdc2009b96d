"""Ids and text arguments with control characters: a ValueError before anything is sent.

2Chat echoes ids and search text into its messages ("Number group ... not found"), so a
CR, LF or ESC given in one would reach the caller's logs and terminal through the answer.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from twochat_async import TwoChatSession, _wire
from twochat_async.testing import FakeTwoChat

#: One of each kind the checks refuse, with how the message quotes it (as repr() does).
CONTROLS = [
    ("\r\n", "\\r\\n"),
    ("\n", "\\n"),
    ("\t", "\\t"),
    ("\x00", "\\x00"),
    ("\x1b[2K", "\\x1b[2K"),
    ("\x7f", "\\x7f"),
    ("\x9b", "\\x9b"),
    ("\u202e", "\\u202e"),
    ("\u2066", "\\u2066"),
    ("\u2028", "\\u2028"),
]

Call = Callable[[TwoChatSession, str], Awaitable[Any]]


async def _hold(chat: TwoChatSession, group_id: str) -> None:
    async with chat.hold(group_id):
        pass  # pragma: no cover - the hold is refused before its block


#: Every string argument of the session, each with a bad value built around ``text``.
CALLS: dict[str, tuple[str, Call]] = {
    "reserve(group_id)": ("group_id", lambda chat, text: chat.reserve(f"abc{text}-123")),
    "reserve(number)": (
        "number",
        lambda chat, text: chat.reserve("abc-123", f"+1213555{text}1234"),
    ),
    "purchase(group_id)": ("group_id", lambda chat, text: chat.purchase(f"abc-123{text}")),
    "hold(group_id)": ("group_id", _hold),
    "available_numbers(group_id)": (
        "group_id",
        lambda chat, text: chat.available_numbers(f"{text}abc-123"),
    ),
    "available_numbers(number_contains)": (
        "number_contains",
        lambda chat, text: chat.available_numbers("abc-123", number_contains=f"555{text}"),
    ),
    "groups(city_name_or_prefix)": (
        "city_name_or_prefix",
        lambda chat, text: chat.groups("US", city_name_or_prefix=f"Los{text}Angeles"),
    ),
    "groups(country)": ("country", lambda chat, text: chat.groups(f"U{text}")),
    "cancel_reservation(uuid)": (
        "reservation uuid",
        lambda chat, text: chat.cancel_reservation(f"a1b2{text}c3d4"),
    ),
}


@pytest.mark.parametrize(("control", "quoted"), CONTROLS, ids=lambda c: repr(c)[1:-1])
@pytest.mark.parametrize("call", CALLS)
async def test_a_control_character_in_an_argument_is_refused_before_sending(
    fake: FakeTwoChat, chat: TwoChatSession, call: str, control: str, quoted: str
) -> None:
    """A ValueError names the argument and quotes the value escaped; nothing reaches 2Chat."""
    argument, make = CALLS[call]
    with pytest.raises(ValueError, match=f"^{argument} ") as info:
        await make(chat, control)
    assert quoted in str(info.value)
    assert str(info.value).isprintable()
    assert (fake.requests, dict(fake.calls)) == ([], {})


@pytest.mark.parametrize(
    "value",
    ["abc-123", " abc-123 ", "grupo São Paulo", "東京-03", "Los Angeles / +1 (213)", "a\\nb"],
)
def test_ids_and_text_without_control_characters_pass_unchanged(value: str) -> None:
    """Spaces, accents, other scripts and a backslash are text: returned as given."""
    assert _wire.check_id(value, "group_id") is value
    assert _wire.check_text(value, "city_name_or_prefix") is value


async def test_a_city_with_accents_still_reaches_2chat(
    fake: FakeTwoChat, chat: TwoChatSession
) -> None:
    """The check refuses controls only: a search for 'São Paulo' is sent as written."""
    assert await chat.groups("BR", city_name_or_prefix="São Paulo") == []
    assert fake.requests[0]["query"]["city_name_or_prefix"] == "São Paulo"


def test_the_message_says_what_is_refused_and_quotes_the_value() -> None:
    """The whole message: the argument, what it must be, the value as repr() writes it."""
    with pytest.raises(ValueError, match=r"^group_id ") as info:
        _wire.check_id("abc\r\n-123", "group_id")
    assert str(info.value) == (
        "group_id must be text without control characters (CR, LF, TAB, NUL, ESC, DEL, C1 "
        "controls, bidirectional overrides or line separators); got 'abc\\r\\n-123'"
    )
