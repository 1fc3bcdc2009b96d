"""What the SDK tells of its calls: OpenTelemetry spans and metrics, and TWOCHAT_LOG.

The OpenTelemetry SDK's in-memory exporter and reader collect what the SDK emits through
``opentelemetry-api`` (the ``otel`` extra; the ``dev`` extra brings the SDK too). Without
them this module is skipped: the base install's own tests run without OpenTelemetry.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import aiohttp
import pytest
from conftest import API_KEY, refusal

from twochat_async import APITimeoutError, AuthenticationError, TwoChatSession
from twochat_async.testing import FakeTwoChat, Reply

pytest.importorskip("opentelemetry.sdk", reason="needs the dev extra (opentelemetry-sdk)")

from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)
from opentelemetry.trace import SpanKind, StatusCode

EXPORTER = InMemorySpanExporter()
READER = InMemoryMetricReader()


@pytest.fixture(scope="module", autouse=True)
def providers() -> None:
    """The SDK's providers, set once for this process (OpenTelemetry allows one)."""
    if not isinstance(trace.get_tracer_provider(), TracerProvider):
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(EXPORTER))
        trace.set_tracer_provider(provider)
        metrics.set_meter_provider(MeterProvider(metric_readers=[READER]))


@pytest.fixture
def spans() -> Iterator[list[ReadableSpan]]:
    """The spans finished during the test, in order."""
    EXPORTER.clear()
    finished: list[ReadableSpan] = []
    yield finished
    finished.extend(EXPORTER.get_finished_spans())


def points() -> dict[tuple[str, frozenset[tuple[str, Any]]], float]:
    """Every metric point so far: a histogram's count, a counter's value."""
    found: dict[tuple[str, frozenset[tuple[str, Any]]], float] = {}
    data = READER.get_metrics_data()
    for resource in data.resource_metrics if data else ():
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                for point in metric.data.data_points:
                    key = (metric.name, frozenset(point.attributes.items()))
                    found[key] = getattr(point, "count", None) or getattr(point, "value", 0)
    return found


def grew(before: dict[Any, float], after: dict[Any, float]) -> dict[Any, float]:
    """The points that grew between two reads, by how much."""
    return {k: v - before.get(k, 0) for k, v in after.items() if v != before.get(k, 0)}


def finished() -> list[ReadableSpan]:
    return list(EXPORTER.get_finished_spans())


async def test_a_call_runs_in_its_span_with_every_attribute(fake: FakeTwoChat) -> None:
    """reserve(): one CLIENT span twochat.reserve, current while its HTTP request runs
    (so aiohttp-level spans nest under it), with the call's attributes and duration."""
    EXPORTER.clear()
    current: list[str] = []
    traces = aiohttp.TraceConfig()

    async def on_start(*_: Any) -> None:
        current.append(getattr(trace.get_current_span(), "name", ""))

    traces.on_request_start.append(on_start)
    before = points()
    async with TwoChatSession(
        API_KEY, base_url=fake.base_url, rate_limit=600, trace_configs=[traces]
    ) as chat:
        await chat.reserve("abc-123")
    (span,) = finished()
    assert current == ["twochat.reserve"]
    assert (span.name, span.kind, span.status.status_code) == (
        "twochat.reserve",
        SpanKind.CLIENT,
        StatusCode.UNSET,
    )
    attributes = dict(span.attributes or {})
    wait = attributes.pop("twochat.rate_limit.wait")
    assert isinstance(wait, float)
    assert 0 <= wait < 5
    assert attributes == {
        "twochat.group_id": "abc-123",
        "http.request.method": "POST",
        "url.path": "/open/numbers/reservations",
        "server.address": "127.0.0.1",
        "http.response.status_code": 201,
        "twochat.attempts": 1,
    }
    success = {
        "twochat.operation": "reserve",
        "twochat.outcome": "success",
        "http.response.status_code": 201,
    }
    changed = grew(before, points())
    assert changed[("twochat.client.operation.duration", frozenset(success.items()))] == 1
    assert changed[("twochat.client.rate_limit.wait", frozenset())] == 1


async def test_a_429_then_success_is_one_span_with_a_retry_event(fake: FakeTwoChat) -> None:
    """A 429 (Retry-After: 1), then the answer: two attempts, one retry event with its
    reason and delay, the 429 and the retry counted."""
    EXPORTER.clear()
    fake.script(refusal(429, "Too many requests", {"Retry-After": "1"}))
    before = points()
    async with TwoChatSession(API_KEY, base_url=fake.base_url, rate_limit=600) as chat:
        await chat.did_types()
    (span,) = finished()
    assert span.name == "twochat.did_types"
    assert (span.attributes or {})["twochat.attempts"] == 2
    assert (span.attributes or {})["http.response.status_code"] == 200
    (event,) = span.events
    assert event.name == "twochat.retry"
    assert (event.attributes or {})["reason"] == "HTTP 429"
    assert float((event.attributes or {})["delay"]) > 0.5  # the pause, however it is waited
    changed = grew(before, points())
    assert changed[("twochat.client.rate_limited", frozenset())] == 1
    assert changed[("twochat.client.retries", frozenset())] == 1


async def test_a_401_ends_its_span_in_error(fake: FakeTwoChat) -> None:
    """A bad key: status ERROR, error.type AuthenticationError, the 401, in the metric too."""
    EXPORTER.clear()
    before = points()
    async with TwoChatSession("wrong-key-0123456789", base_url=fake.base_url) as chat:
        with pytest.raises(AuthenticationError):
            await chat.info()
    (span,) = finished()
    assert (span.name, span.status.status_code) == ("twochat.info", StatusCode.ERROR)
    assert (span.attributes or {})["error.type"] == "AuthenticationError"
    assert (span.attributes or {})["http.response.status_code"] == 401
    failed = {
        "twochat.operation": "info",
        "error.type": "AuthenticationError",
        "http.response.status_code": 401,
    }
    assert (
        grew(before, points())[("twochat.client.operation.duration", frozenset(failed.items()))]
        == 1
    )


async def test_a_timeout_after_sending_says_the_request_was_sent(fake: FakeTwoChat) -> None:
    """No answer within the timeout: error.type APITimeoutError, twochat.request_sent."""
    EXPORTER.clear()
    fake.script(Reply(201, delay=3))
    async with TwoChatSession(API_KEY, base_url=fake.base_url, timeout=0.3, max_retries=0) as chat:
        with pytest.raises(APITimeoutError):
            await chat.purchase("abc-123")
    (span,) = finished()
    attributes = span.attributes or {}
    assert (span.name, span.status.status_code) == ("twochat.purchase", StatusCode.ERROR)
    assert (attributes["error.type"], attributes["twochat.request_sent"]) == (
        "APITimeoutError",
        True,
    )
    assert "http.response.status_code" not in attributes


async def test_a_hold_shows_its_reserve_and_its_purchase_or_cancel(fake: FakeTwoChat) -> None:
    """A hold bought: twochat.reserve then twochat.purchase; one left: the cancel."""
    EXPORTER.clear()
    async with TwoChatSession(API_KEY, base_url=fake.base_url) as chat:
        async with chat.hold("abc-123") as hold:
            await hold.purchase()
        async with chat.hold("abc-123"):
            pass
    assert [span.name for span in finished()] == [
        "twochat.reserve",
        "twochat.purchase",
        "twochat.reserve",
        "twochat.cancel_reservation",
    ]
    cancel = finished()[-1].attributes or {}
    assert (cancel["http.request.method"], cancel["url.path"]) == (
        "DELETE",
        "/open/numbers/reservations/{uuid}",
    )


async def test_nothing_exported_holds_a_piece_of_the_key(fake: FakeTwoChat) -> None:
    """Every span and metric exported for a success, a 429 and a failure: no 12-character
    piece of the API key anywhere in them."""
    EXPORTER.clear()
    fake.script(refusal(429, "Too many requests", {"Retry-After": "1"}), Reply(502))
    async with TwoChatSession(API_KEY, base_url=fake.base_url, max_retries=0) as chat:
        for _ in range(2):
            with pytest.raises(Exception):  # noqa: B017, PT011 - any failure will do
                await chat.reserve("abc-123")
        await chat.reserve("abc-123")
    data = READER.get_metrics_data()
    shown = "".join(span.to_json() for span in finished()) + (data.to_json() if data else "")
    assert "twochat.reserve" in shown
    pieces = {API_KEY[i : i + 12] for i in range(len(API_KEY) - 11)}
    assert [piece for piece in pieces if piece in shown] == []


# -- TWOCHAT_LOG ------------------------------------------------------------------------------

PROGRAM = """
import asyncio
from twochat_async import TwoChatSession
from twochat_async.testing import FakeTwoChat

async def main():
    fake = FakeTwoChat(api_key="secret-key-0123456789")
    async with fake as url, TwoChatSession(fake.api_key, base_url=url) as chat:
        await chat.did_types()
        await chat.reserve("abc-123")

asyncio.run(main())
"""


def run_program(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    import os

    clean = {k: v for k, v in os.environ.items() if not k.startswith("TWOCHAT_")}
    return subprocess.run(  # noqa: S603 - our interpreter and our program
        [sys.executable, "-c", PROGRAM],
        capture_output=True,
        text=True,
        timeout=60,
        env=clean | env,
        check=True,
    )


@pytest.mark.slow
def test_twochat_log_info_logs_one_line_per_request_and_none_without() -> None:
    """TWOCHAT_LOG=info: `method path status duration attempt` per request on stderr, no
    key; unset: nothing at all."""
    logged = run_program({"TWOCHAT_LOG": "info"}).stderr.splitlines()
    assert [line.split()[3:6] + line.split()[7:] for line in logged] == [
        ["GET", "/open/numbers/did-types", "200", "attempt", "1"],
        ["POST", "/open/numbers/reservations", "201", "attempt", "1"],
    ]
    assert all(line.split()[6].endswith("s") for line in logged)
    assert "secret-key" not in "".join(logged)
    assert run_program({}).stderr == ""


@pytest.mark.slow
def test_twochat_log_debug_also_logs_the_waits() -> None:
    """TWOCHAT_LOG=debug adds the waits: here for the rate limit of rate_limit=600."""
    program = PROGRAM.replace("base_url=url)", "base_url=url, rate_limit=600)")
    program = program.replace("await chat.reserve", "await chat.did_types(); await chat.reserve")
    import os

    clean = {k: v for k, v in os.environ.items() if not k.startswith("TWOCHAT_")}
    stderr = subprocess.run(  # noqa: S603 - our interpreter and our program
        [sys.executable, "-c", program],
        capture_output=True,
        text=True,
        timeout=60,
        env=clean | {"TWOCHAT_LOG": "debug"},
        check=True,
    ).stderr
    assert "for rate limit" in stderr
    assert stderr.count(" attempt 1") == 3


@pytest.mark.slow
def test_without_opentelemetry_the_methods_are_left_as_they_are() -> None:
    """opentelemetry-api not importable: no wrapper around the methods, calls work."""
    program = (
        "import sys; sys.modules['opentelemetry'] = None\n"
        "import json\n"
        "from twochat_async import TwoChatSession\n"
        "print(json.dumps(hasattr(TwoChatSession.reserve, '__wrapped__')))\n" + PROGRAM
    )
    out = subprocess.run(  # noqa: S603 - our interpreter and our program
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=60, check=True
    )
    assert json.loads(out.stdout) is False
    assert asyncio.iscoroutinefunction(TwoChatSession.reserve)


@pytest.mark.slow
def test_a_session_looks_for_a_provider_at_its_first_call() -> None:
    """A session's first call before any provider is set: none of its calls is traced,
    even after one is set; a session whose first call comes after it is traced."""
    program = """
import asyncio, json
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from twochat_async import TwoChatSession
from twochat_async.testing import FakeTwoChat

async def main():
    exporter, fake = InMemorySpanExporter(), FakeTwoChat()
    async with fake as url, TwoChatSession(fake.api_key, base_url=url) as early:
        later = TwoChatSession(fake.api_key, base_url=url)
        await early.did_types()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        trace.set_tracer_provider(provider)
        await early.regions("US")
        async with later:
            await later.did_types()
    print(json.dumps([span.name for span in exporter.get_finished_spans()]))

asyncio.run(main())
"""
    out = subprocess.run(  # noqa: S603 - our interpreter and our program
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=60, check=True
    )
    assert json.loads(out.stdout) == ["twochat.did_types"]
