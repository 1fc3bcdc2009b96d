"""A FastAPI app that reserves 2Chat numbers, then buys or releases them on request.

What it shows:

- one ``TwoChatSession`` per application, opened in the app's ``lifespan`` and closed
  when it ends, handed to each route as a dependency (``Chat``);
- a reservation that outlives the request that made it. ``async with chat.hold()`` lives
  inside one block, and a web app's reserve and purchase are two requests, so the app
  keeps what it reserved in a registry by uuid (``Held``), with the group each came
  from, which ``purchase()`` needs and 2Chat's ``reservations()`` does not tell;
- the routes:

  - ``POST /numbers/hold`` with ``{"group_id": "...", "number": "+1..."}`` (``number`` is
    optional) reserves a number: ``201`` with ``{"uuid", "number", "group_id",
    "expires_at"}``;
  - ``POST /numbers/{uuid}/purchase`` buys exactly that reserved number: ``201`` with
    ``{"uuid", "number", "group_id", "details"}`` (``details``: what 2Chat answered);
  - ``DELETE /numbers/{uuid}`` cancels the reservation: ``204``;

- what is reserved and neither bought nor released is cancelled when the app shuts down;
  a purchase whose outcome is unknown is neither sent again nor cancelled (as ``Hold``
  does);
- 2Chat's errors mapped to HTTP answers, FastAPI's ``{"detail": "..."}``, never holding
  the API key:

  ================================================  =====  ==============================
  failure                                           HTTP   why
  ================================================  =====  ==============================
  ``ValueError`` (a bad argument; nothing sent)     422    the caller's request is invalid
  ``NotFoundError``, or no such uuid held here      404    unknown group or reservation
  ``UnprocessableEntityError``                      409    the number is taken or not in
                                                           the group
  ``APIError`` 406                                  422    the group lets nobody pick a
                                                           number
  a reservation expired before its purchase         410    reserve again
  a purchase in flight, or its outcome unknown      409    wait, or check (below)
  ``RateLimitError``                                429    with ``Retry-After``
  ``ConflictError`` (2Chat booting up)              503    with ``Retry-After: 5``
  ``AuthenticationError``,                          503    this server's 2Chat account is
  ``PaymentRequiredError``,                                unusable: not the caller's
  ``PermissionDeniedError``                                fault (logged as an error)
  ``APITimeoutError``                               504    2Chat did not answer in time
  ``ServerError``, ``APIConnectionError``,          502    2Chat failed
  ``InvalidResponseError``, any other ``APIError``
  ================================================  =====  ==============================

  When a reservation or purchase failed after its request may have reached 2Chat
  (``request_sent``, a ``ServerError``, an answer that cannot be decoded), the 502 or 504
  says so and tells the caller to check before trying again.

The registry lives in this process: run one worker (``uvicorn --workers 1``), or keep it
in a store every worker shares. Any caller may buy any reservation it knows the uuid of:
put the routes behind your own authentication.

Run it against the embedded fake 2Chat (no key, no network), after
``pip install -e ".[examples]"``::

    python examples/fastapi_app.py --fake --port 8000
    curl -s -X POST localhost:8000/numbers/hold -H 'Content-Type: application/json' \\
        -d '{"group_id": "abc-123"}'
    curl -s -X POST localhost:8000/numbers/UUID/purchase

Against 2Chat, set ``TWOCHAT_API_KEY`` (and optionally ``TWOCHAT_BASE_URL``) and leave
out ``--fake``; or serve ``create_app()`` with any ASGI server.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import math
import os
import sys
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import uvicorn
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request
from pydantic import BaseModel

from twochat_async import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    AuthenticationError,
    ConflictError,
    NotFoundError,
    PaymentRequiredError,
    PermissionDeniedError,
    RateLimitError,
    Reservation,
    ServerError,
    TwoChatError,
    TwoChatSession,
    UnprocessableEntityError,
)
from twochat_async.testing import FakeTwoChat

logger = logging.getLogger("fastapi_app")

# The "--8<--" comments mark the parts that docs/fastapi.md shows.

#: Makes the session when the app starts; ``TwoChatSession`` itself reads the environment.
ChatFactory = Callable[[], AbstractAsyncContextManager[TwoChatSession]]


@dataclass
class Held:
    """A reservation this app made, not yet bought nor released.

    Attributes:
        reservation: The reservation, as ``reserve()`` returned it.
        group_id: The group it came from: the purchase needs it.
        state: ``"held"``; ``"buying"`` while its purchase is in flight; ``"unknown"``
            once a purchase failed in a way that leaves 2Chat's outcome unknown.
    """

    reservation: Reservation
    group_id: str
    state: Literal["held", "buying", "unknown"] = "held"


class HoldRequest(BaseModel):
    """The body of ``POST /numbers/hold``."""

    group_id: str
    number: str | None = None


class HeldNumber(BaseModel):
    """A reserved number, to buy or release before ``expires_at``."""

    uuid: str
    number: str
    group_id: str
    expires_at: str


class BoughtNumber(BaseModel):
    """A bought number, with what 2Chat answered in ``details``."""

    uuid: str
    number: str
    group_id: str
    details: dict[str, Any]


# --8<-- [start:dependencies]
def get_chat(request: Request) -> TwoChatSession:
    """The app's one session, opened by its lifespan."""
    chat: TwoChatSession = request.app.state.chat
    return chat


def get_held(request: Request) -> dict[str, Held]:
    """The app's registry of reservations, by uuid."""
    held: dict[str, Held] = request.app.state.held
    return held


Chat = Annotated[TwoChatSession, Depends(get_chat)]
Registry = Annotated[dict[str, Held], Depends(get_held)]
# --8<-- [end:dependencies]


def outcome_unknown(exc: BaseException) -> bool:
    """Whether 2Chat may have acted on a request that failed with ``exc``."""
    if isinstance(exc, APIConnectionError):
        return exc.request_sent
    if isinstance(exc, ServerError):
        return True  # 2Chat, or a gateway in front of it, may have failed after acting
    if isinstance(exc, (APIError, ValueError)):
        return False  # 2Chat refused it, or the SDK did not send it
    # A success answer that cannot be decoded (InvalidResponseError), a request cancelled
    # in flight, a bug: 2Chat may have acted. A plain TwoChatError was never sent.
    return type(exc) is not TwoChatError


# --8<-- [start:errors]
#: A 2Chat account this server cannot use: not the caller's fault.
ACCOUNT_ERRORS = (
    AuthenticationError,
    PaymentRequiredError,
    PermissionDeniedError,
)
#: The detail of an answer after a request that may have reached 2Chat.
UNKNOWN_OUTCOME = (
    "2Chat failed after the {doing} request may have reached it: the number "
    "may be {done}. Check the account's reservations and numbers before "
    "trying again."
)


def http_error(exc: TwoChatError | ValueError, doing: str) -> HTTPException:
    """The HTTP answer to an SDK error raised while ``doing`` (a verb).

    The module docstring's table; the details go to the log, not the caller.
    """
    if isinstance(exc, ValueError):  # the SDK checked it, and sent nothing
        return HTTPException(422, str(exc))
    if isinstance(exc, NotFoundError):
        return HTTPException(404, exc.message)
    if isinstance(exc, UnprocessableEntityError):  # the number is not free
        return HTTPException(409, exc.message)
    if isinstance(exc, APIError) and exc.status == 406:  # no picking a number
        return HTTPException(422, exc.message)
    if isinstance(exc, RateLimitError):  # without a wait, the SDK pauses 1 s
        wait = {"Retry-After": str(math.ceil(exc.retry_after or 1))}
        return HTTPException(429, "2Chat's rate limit is reached.", wait)
    if isinstance(exc, ConflictError):  # 2Chat asks to retry in a few seconds
        soon = {"Retry-After": "5"}
        return HTTPException(503, "2Chat is starting up.", soon)
    if isinstance(exc, ACCOUNT_ERRORS):
        logger.error("The 2Chat account refused to %s: %s", doing, exc)
        detail = f"This service cannot {doing} numbers right now."
        return HTTPException(503, detail)
    logger.warning("Could not %s with 2Chat: %s", doing, exc)
    status = 504 if isinstance(exc, APITimeoutError) else 502
    if doing in ("reserve", "purchase") and outcome_unknown(exc):
        done = "reserved" if doing == "reserve" else "bought"
        detail = UNKNOWN_OUTCOME.format(doing=doing, done=done)
        return HTTPException(status, detail)
    detail = f"2Chat could not {doing} the number; try again later."
    return HTTPException(status, detail)


# --8<-- [end:errors]


def held_number(held: Held) -> HeldNumber:
    """The body that describes a reservation."""
    reservation = held.reservation
    return HeldNumber(
        uuid=reservation.uuid,
        number=reservation.number,
        group_id=held.group_id,
        expires_at=reservation.expires_at.isoformat().replace("+00:00", "Z"),
    )


router = APIRouter(prefix="/numbers")


@router.post("/hold", status_code=201)
async def hold_number(body: HoldRequest, chat: Chat, registry: Registry) -> HeldNumber:
    """Reserve a number of ``group_id`` (a given ``number``, or any) and keep it."""
    try:
        reservation = await chat.reserve(body.group_id, body.number)
    except (TwoChatError, ValueError) as exc:
        raise http_error(exc, "reserve") from exc
    held = registry[reservation.uuid] = Held(reservation, body.group_id)
    return held_number(held)


def find(registry: Mapping[str, Held], uuid: str) -> Held:
    """The reservation ``uuid`` this app holds, or a 404 answer."""
    held = registry.get(uuid)
    if held is None:
        raise HTTPException(
            404, f"No reservation {uuid} is held here (bought, released or never made)."
        )
    return held


# --8<-- [start:purchase]
@router.post("/{uuid}/purchase", status_code=201)
async def purchase_number(
    uuid: str,
    chat: Chat,
    registry: Registry,
) -> BoughtNumber:
    """Buy exactly the number reservation ``uuid`` holds."""
    held = find(registry, uuid)
    number = held.reservation.number
    if held.state == "buying":
        detail = f"The purchase of {number} is in progress."
        raise HTTPException(409, detail)
    if held.state == "unknown":
        detail = (
            f"The outcome of an earlier purchase of {number} is unknown, so "
            "it is not sent again. Check the account's numbers and "
            "reservations."
        )
        raise HTTPException(409, detail)
    if held.reservation.is_expired():
        del registry[uuid]
        expired = held_number(held).expires_at
        detail = f"The reservation expired at {expired}; reserve again."
        raise HTTPException(410, detail)
    held.state = "buying"
    try:
        bought = await chat.purchase(held.group_id, number)
    except BaseException as exc:
        held.state = "unknown" if outcome_unknown(exc) else "held"
        if isinstance(exc, (TwoChatError, ValueError)):
            raise http_error(exc, "purchase") from exc
        raise
    del registry[uuid]
    return BoughtNumber(
        uuid=uuid,
        number=number,
        group_id=held.group_id,
        details=dict(bought.details),
    )


# --8<-- [end:purchase]


@router.delete("/{uuid}", status_code=204)
async def release_number(uuid: str, chat: Chat, registry: Registry) -> None:
    """Cancel reservation ``uuid``, returning its number to 2Chat's pool."""
    held = find(registry, uuid)
    if held.state == "buying":
        raise HTTPException(409, f"The purchase of {held.reservation.number} is in progress.")
    try:
        await chat.cancel_reservation(held.reservation)
    except NotFoundError:
        pass  # expired, or cancelled by someone else: released all the same
    except (TwoChatError, ValueError) as exc:
        raise http_error(exc, "release") from exc
    registry.pop(uuid, None)


async def release_unbought(chat: TwoChatSession, registry: dict[str, Held]) -> None:
    """Cancel every reservation still held; leave those whose purchase outcome is unknown."""
    unknown = [held for held in registry.values() if held.state == "unknown"]
    for held in unknown:
        logger.warning(
            "The outcome of the purchase of %s is unknown: its reservation %s is left to "
            "expire at %s. Check the account's numbers.",
            held.reservation.number,
            held.reservation.uuid,
            held.reservation.expires_at.isoformat(),
        )
    releasing = [held.reservation for held in registry.values() if held.state != "unknown"]
    results = await asyncio.gather(*map(chat.cancel_reservation, releasing), return_exceptions=True)
    for reservation, result in zip(releasing, results, strict=True):
        if isinstance(result, BaseException) and not isinstance(result, NotFoundError):
            logger.warning("Could not cancel the reservation %s: %s", reservation.uuid, result)
    registry.clear()


# --8<-- [start:lifespan]
def create_app(chat_factory: ChatFactory = TwoChatSession) -> FastAPI:
    """Return the app; ``chat_factory`` makes its one session at start-up.

    Args:
        chat_factory: Called once as the app starts; returns the session, or
            an async context manager yielding one. The default reads
            ``TWOCHAT_API_KEY`` and ``TWOCHAT_BASE_URL``; tests pass one
            pointed at a ``FakeTwoChat``.
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Before the yield: start-up. After it: shutdown, once the server
        # has stopped taking requests.
        async with chat_factory() as chat:
            app.state.chat = chat
            app.state.held = {}
            try:
                yield
            finally:
                await release_unbought(chat, app.state.held)

    app = FastAPI(title="2Chat numbers", lifespan=lifespan)
    app.include_router(router)
    return app


# --8<-- [end:lifespan]


@asynccontextmanager
async def fake_chat() -> AsyncIterator[TwoChatSession]:
    """Start an embedded fake 2Chat and yield a session pointed at it."""
    fake = FakeTwoChat()
    async with fake as base_url, TwoChatSession(fake.api_key, base_url=base_url) as chat:
        yield chat


def main(argv: Sequence[str] | None = None) -> int:
    """Serve the app with uvicorn until SIGINT or SIGTERM; return the exit status."""
    parser = argparse.ArgumentParser(description="Reserve and buy 2Chat numbers over HTTP.")
    parser.add_argument("--fake", action="store_true", help="serve against an embedded fake")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=8000, help="port to listen on")
    args = parser.parse_args(argv)
    if not args.fake and not os.environ.get("TWOCHAT_API_KEY"):
        print("fastapi_app: set TWOCHAT_API_KEY, or pass --fake", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO)
    app = create_app(fake_chat if args.fake else TwoChatSession)
    # uvicorn handles SIGINT and SIGTERM: it stops serving, then runs the lifespan's end.
    uvicorn.run(app, host=args.host, port=args.port, lifespan="on", timeout_graceful_shutdown=5)
    return 0


if __name__ == "__main__":
    sys.exit(main())
