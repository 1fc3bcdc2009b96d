"""An aiohttp.web backend that reserves 2Chat numbers through one shared session.

What it shows:

- one ``TwoChatSession`` per application, opened at start-up and closed at clean-up by
  the app's ``cleanup_ctx``, shared by every request handler;
- ``POST /numbers/hold`` with ``{"group_id": "...", "number": "+1..."}`` (``number`` is
  optional) reserves a number and answers ``201`` with
  ``{"uuid", "number", "group_id", "expires_at"}``;
- SDK errors mapped to HTTP answers, each a JSON ``{"error": "..."}``: a bad argument is
  ``400``, an unknown group ``404``, a number that cannot be reserved ``409``, and any
  other 2Chat failure ``502`` (the details go to the log, never to the caller).

Run it against the embedded fake 2Chat (no key, no network)::

    python examples/web_backend.py --fake --port 8080
    curl -s -X POST localhost:8080/numbers/hold -d '{"group_id": "abc-123"}'

Against 2Chat, set ``TWOCHAT_API_KEY`` (and optionally ``TWOCHAT_BASE_URL``) and leave
out ``--fake``.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from aiohttp import web

from twochat_async import (
    APIError,
    NotFoundError,
    TwoChatError,
    TwoChatSession,
    UnprocessableEntityError,
)
from twochat_async.testing import FakeTwoChat

logger = logging.getLogger("web_backend")

#: Makes the session when the app starts; ``TwoChatSession`` itself reads the environment.
ChatFactory = Callable[[], AbstractAsyncContextManager[TwoChatSession]]

#: Where the app keeps its one session while it runs.
CHAT = web.AppKey("chat", TwoChatSession)


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


async def hold_number(request: web.Request) -> web.Response:
    """Reserve a number of ``group_id`` (a given ``number``, or any) and return it."""
    try:
        data = await request.json()
    except ValueError:
        return _error(400, "The body must be a JSON object.")
    if not isinstance(data, dict):
        return _error(400, "The body must be a JSON object.")
    group_id, number = data.get("group_id"), data.get("number")
    if not isinstance(group_id, str) or not isinstance(number, (str, type(None))):
        return _error(400, "group_id must be a string, and number a string if given.")
    try:
        reservation = await request.app[CHAT].reserve(group_id, number)
    except ValueError as exc:  # checked by the SDK before anything is sent
        return _error(400, str(exc))
    except NotFoundError as exc:
        return _error(404, exc.message)
    except UnprocessableEntityError as exc:  # not in the group, or taken
        return _error(409, exc.message)
    except APIError as exc:
        if exc.status == 406:  # the group does not let callers pick a number
            return _error(409, exc.message)
        logger.warning("2Chat refused a reservation: %s", exc)
        return _error(502, "2Chat could not reserve a number; try again later.")
    except TwoChatError as exc:  # the SDK never puts the API key in an error
        logger.warning("2Chat could not be reached: %s", exc)
        return _error(502, "2Chat could not reserve a number; try again later.")
    body = {
        "uuid": reservation.uuid,
        "number": reservation.number,
        "group_id": group_id,
        "expires_at": reservation.expires_at.isoformat().replace("+00:00", "Z"),
    }
    return web.json_response(body, status=201)


def create_app(chat_factory: ChatFactory = TwoChatSession) -> web.Application:
    """Return the application; ``chat_factory`` makes its one session at start-up.

    Args:
        chat_factory: Called once when the app starts; returns the session (or an async
            context manager yielding one). The default reads ``TWOCHAT_API_KEY`` and
            ``TWOCHAT_BASE_URL``; tests pass a session pointed at a ``FakeTwoChat``.
    """

    async def chat_session(app: web.Application) -> AsyncIterator[None]:
        # Code before the yield runs at start-up, code after it at clean-up.
        async with chat_factory() as chat:
            app[CHAT] = chat
            yield

    app = web.Application()
    app.cleanup_ctx.append(chat_session)
    app.router.add_post("/numbers/hold", hold_number)
    return app


@asynccontextmanager
async def fake_chat() -> AsyncIterator[TwoChatSession]:
    """Start an embedded fake 2Chat and yield a session pointed at it."""
    fake = FakeTwoChat()
    async with fake as base_url, TwoChatSession(fake.api_key, base_url=base_url) as chat:
        yield chat


def main(argv: Sequence[str] | None = None) -> int:
    """Serve the app until SIGINT or SIGTERM; return the exit status."""
    parser = argparse.ArgumentParser(description="Reserve 2Chat numbers over HTTP.")
    parser.add_argument("--fake", action="store_true", help="serve against an embedded fake")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=8080, help="port to listen on")
    args = parser.parse_args(argv)
    if not args.fake and not os.environ.get("TWOCHAT_API_KEY"):
        print("web_backend: set TWOCHAT_API_KEY, or pass --fake", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO)
    app = create_app(fake_chat if args.fake else TwoChatSession)
    # run_app handles SIGINT and SIGTERM: it stops serving and runs the clean-up.
    web.run_app(app, host=args.host, port=args.port, shutdown_timeout=5, print=_ready)
    return 0


def _ready(message: str) -> None:
    print(message.strip(), flush=True)


if __name__ == "__main__":
    sys.exit(main())
