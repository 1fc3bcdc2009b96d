"""A loopback 2Chat stand-in for a hold's reserve: the test decides its answer, and when.

`FakeTwoChat` answers every reserve at once and well; `Reserving` answers the reserve
with whatever the test set (an undecodable reservation, a 502, half a body, a dropped
connection), only once the test sets `Reserving.answer`, and records every request in
the order it arrived. It cancels any reservation and buys any number it is asked to.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any, Literal

from aiohttp import web

#: The uuid of the reservation the stand-in answers, unless told otherwise.
UUID = "5f0c8a43-9a4e-4d1e-8c7b-2f6a1d3e9b10"
RESERVE = "POST /open/numbers/reservations"
PURCHASE = "POST /open/numbers/purchase"
CANCEL = f"DELETE /open/numbers/reservations/{UUID}"


def reservation_answer(**details: object) -> bytes:
    """2Chat's reserve answer; ``details`` replace its fields (``None`` leaves one out)."""
    fields: dict[str, object] = {
        "uuid": UUID,
        "number": "+12135551240",
        "created_at": "2024-01-15T10:30:00Z",
        "expires_at": "2099-01-15T11:30:00Z",
        **details,
    }
    kept = {key: value for key, value in fields.items() if value is not None}
    return json.dumps({"success": True, "data": {"reservation_details": kept}}).encode()


class Reserving:
    """The stand-in's state: the reserve's answer, what arrived, what was bought.

    Args:
        status: The reserve's HTTP status.
        body: The reserve's body; a reservation of `UUID` by default.
        fault: ``"truncate"`` sends the headers and half the body, then closes;
            ``"drop"`` closes the connection without an answer.
        content_type: The reserve answer's content type.
        answered: Whether `answer` starts set (the reserve is answered at once).
    """

    def __init__(
        self,
        status: int = 201,
        body: bytes | None = None,
        *,
        fault: Literal["truncate", "drop"] | None = None,
        content_type: str = "application/json",
        answered: bool = True,
    ) -> None:
        self.status = status
        self.body = reservation_answer() if body is None else body
        self.fault = fault
        self.content_type = content_type
        #: Every request, as ``"METHOD /path"``, in the order they arrived.
        self.requests: list[str] = []
        #: The JSON bodies of the purchases, in order.
        self.purchases: list[Any] = []
        #: Set when a reserve has arrived.
        self.reserving = asyncio.Event()
        #: The reserve is answered once this is set.
        self.answer = asyncio.Event()
        if answered:
            self.answer.set()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Answer any request: the reserve as set, a cancel or a purchase with success."""
        self.requests.append(f"{request.method} {request.path}")
        body = await request.read()
        if f"{request.method} {request.path}" == RESERVE:
            self.reserving.set()
            await self.answer.wait()
            return await self._reserved(request)
        if request.method == "DELETE":
            uuid = request.path.rsplit("/", 1)[-1]
            message = f"Reservation {uuid} cancelled successfully"
            return web.json_response({"success": True, "message": message})
        if f"{request.method} {request.path}" == PURCHASE:
            self.purchases.append(json.loads(body))
            return web.json_response({"success": True, "message": "purchased"}, status=201)
        error = {"success": False, "error": True, "error_message": "no such route"}
        return web.json_response(error, status=404)

    async def _reserved(self, request: web.Request) -> web.StreamResponse:
        transport = request.transport
        assert transport is not None
        if self.fault == "drop":
            transport.abort()
            return web.Response()
        response = web.StreamResponse(status=self.status)
        response.content_type = self.content_type
        response.content_length = len(self.body)
        await response.prepare(request)
        if self.fault == "truncate":
            await response.write(self.body[: len(self.body) // 2])
            transport.abort()
            return response
        await response.write(self.body)
        await response.write_eof()
        return response
