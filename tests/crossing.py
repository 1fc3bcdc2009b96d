"""What a worker process runs in the tests of errors crossing a process.

Importable by name in a child process (spawned or forked): the tests' folder is on the
path that ``multiprocessing`` hands the child.
"""

from __future__ import annotations

import asyncio

from twochat_async import TwoChatSession
from twochat_async.testing import FakeTwoChat, Reply

#: What the child's fake answers to ``reserve()``, by case.
REPLIES = {
    "rate limited": Reply(429, headers={"Retry-After": "120"}),
    "dropped": Reply(fault="drop"),
}


async def _reserve(case: str) -> None:
    fake = FakeTwoChat("a-key-of-the-child-process")
    async with (
        fake as url,
        TwoChatSession(fake.api_key, base_url=url, max_retries=0, trust_env=False) as chat,
    ):
        fake.script(REPLIES[case])
        await chat.reserve("abc-123")


def reserve_in_child(case: str) -> None:
    """Reserve against a fake of this process, scripted to fail as ``case`` says."""
    asyncio.run(_reserve(case))
