"""What the SDK tells of its calls: OpenTelemetry spans and metrics, and TWOCHAT_LOG's lines.

With ``opentelemetry-api`` importable (``pip install "twochat-async[otel]"``), each public
call of a session that found a tracer or meter provider configured at its first call runs
in a span ``twochat.<operation>`` of kind CLIENT, current while its HTTP attempts run, and
feeds four metrics; without it, `operation` leaves the functions as they are.
The transport tells a call's span what happened through a `Call` in a context variable:
attempts, the last status, the wait for the rate budget, retries.

``TWOCHAT_LOG=info`` (or ``debug``), read when this module is imported, logs one line per
HTTP request on stderr when the program has set up no logging of its own.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import sys
import time
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import Any, TypeVar
from urllib.parse import urlsplit

from .errors import APIConnectionError, APIError

try:
    from opentelemetry import metrics, trace
except ImportError:  # the otel extra is not installed: nothing to tell
    metrics = trace = None  # type: ignore[assignment]

logger = logging.getLogger("twochat_async")

F = TypeVar("F", bound=Callable[..., Awaitable[Any]])


class Call:
    """What the transport learned of one public call, for its span and metrics."""

    __slots__ = ("attempts", "request_sent", "status", "wait")

    def __init__(self) -> None:
        self.attempts = 0
        self.status: int | None = None
        self.wait = 0.0
        self.request_sent: bool | None = None


_CALL: ContextVar[Call | None] = ContextVar("twochat_async_call", default=None)


def attempted(method: str, path: str, outcome: object, took: float, attempt: int) -> None:
    """Count an HTTP attempt: for the call's span, and as TWOCHAT_LOG's line.

    Args:
        outcome: The answer's status, or the error the attempt ended with.
    """
    status = outcome if isinstance(outcome, int) else getattr(outcome, "status", None)
    call = _CALL.get()
    if call is not None:
        call.attempts, call.status = attempt + 1, status
        if isinstance(outcome, APIConnectionError):
            call.request_sent = outcome.request_sent
    if _LOG_LEVEL is not None:
        shown = status if status is not None else type(outcome).__name__
        logger.info("%s %s %s %.3fs attempt %d", method, path, shown, took, attempt + 1)


def waited(what: str, seconds: float) -> None:
    """Count a wait for the rate limit (for the call's span and the metric) or for
    ``what`` else; at TWOCHAT_LOG=debug, log it."""
    call = _CALL.get()
    if call is not None and what == "rate limit":
        call.wait += seconds
        _RATE_LIMIT_WAIT.record(seconds)
    if DEBUG and seconds >= 0.001:
        logger.debug("Waited %.3f s for %s", seconds, what)


def retrying(exc: BaseException, delay: float) -> None:
    """Count a retry: an event of the call's span, and the metrics."""
    if trace is None:
        return
    if isinstance(exc, APIError) and exc.status == 429:
        _RATE_LIMITED.add(1)
    _RETRIES.add(1)
    trace.get_current_span().add_event(
        "twochat.retry", {"reason": _reason(exc), "delay": round(delay, 3)}
    )


def _reason(exc: BaseException) -> str:
    if isinstance(exc, APIError):
        return f"HTTP {exc.status}"
    return type(exc).__name__


def operation(name: str, method: str, template: str, *, group: bool = False) -> Callable[[F], F]:
    """Run a session method in its span ``twochat.<name>``, and measure it.

    Whether a tracer or meter provider is configured is looked up once per session, at
    its first call (in ``self._observed``): the lookup reads the environment twice, which
    cost 4 % of a call's CPU when made on every call.

    Args:
        name: The operation's name: the public method's.
        method: Its HTTP method.
        template: Its path, with ``{uuid}`` where an id goes.
        group: Whether the method's first argument is a ``group_id``.
    """

    def decorate(function: F) -> F:
        if trace is None:
            return function

        @functools.wraps(function)
        async def traced(self: Any, *args: Any, **kwargs: Any) -> Any:
            observed = self._observed
            if observed is None:  # the session's first call
                observed = self._observed = _configured()
            if not observed:  # the API's no-op defaults: nothing would be kept
                return await function(self, *args, **kwargs)
            group_id = (args[0] if args else kwargs.get("group_id")) if group else None
            with _TRACER.start_as_current_span(
                f"twochat.{name}",
                kind=trace.SpanKind.CLIENT,
                record_exception=False,  # its text may quote 2Chat's: the type says enough
                set_status_on_exception=False,
            ) as span:
                call, started, failure = Call(), time.perf_counter(), None
                token = _CALL.set(call)
                try:
                    return await function(self, *args, **kwargs)
                except BaseException as exc:
                    failure = exc
                    raise
                finally:
                    with contextlib.suppress(ValueError):  # closed by the GC elsewhere
                        _CALL.reset(token)
                    _finish(span, call, name, started, failure)
                    if span.is_recording():
                        _describe(span, method, template, self.base_url, group_id)
                    failure = None  # the error's traceback holds this frame: no cycle

        return traced  # type: ignore[return-value]

    return decorate


def _configured() -> bool:
    """Whether the program configured tracing or metrics (an SDK's provider is set)."""
    tracing = not isinstance(trace.get_tracer_provider(), _UNSET_TRACING)
    # The API's own meter providers (its proxy and its no-op) live in its own module.
    return tracing or not type(metrics.get_meter_provider()).__module__.startswith(_API_METERS)


def _describe(span: Any, method: str, template: str, base_url: str, group: object) -> None:
    span.set_attribute("http.request.method", method)
    span.set_attribute("url.path", template)
    span.set_attribute("server.address", urlsplit(base_url).hostname or "")
    if isinstance(group, str):
        span.set_attribute("twochat.group_id", group)


def _finish(span: Any, call: Call, name: str, started: float, exc: BaseException | None) -> None:
    """Set what the call ended with on its span, and record its duration."""
    attributes: dict[str, Any] = {"twochat.operation": name}
    if call.status is not None:
        attributes["http.response.status_code"] = call.status
    if exc is None:
        attributes["twochat.outcome"] = "success"
    else:
        attributes["error.type"] = type(exc).__name__
    _DURATION.record(time.perf_counter() - started, attributes)
    if not span.is_recording():
        return
    span.set_attribute("twochat.attempts", call.attempts)
    span.set_attribute("twochat.rate_limit.wait", round(call.wait, 6))
    if call.status is not None:
        span.set_attribute("http.response.status_code", call.status)
    if exc is not None:
        span.set_attribute("error.type", type(exc).__name__)
        if call.request_sent is not None:
            span.set_attribute("twochat.request_sent", call.request_sent)
        span.set_status(trace.Status(trace.StatusCode.ERROR, type(exc).__name__))


if trace is not None:
    _UNSET_TRACING = (trace.ProxyTracerProvider, trace.NoOpTracerProvider)
    _API_METERS = "opentelemetry.metrics"  # an SDK's live elsewhere (opentelemetry.sdk...)
    _TRACER = trace.get_tracer("twochat_async")
    _METER = metrics.get_meter("twochat_async")
    _DURATION = _METER.create_histogram(
        "twochat.client.operation.duration", unit="s", description="Duration of SDK calls"
    )
    _RATE_LIMITED = _METER.create_counter(
        "twochat.client.rate_limited", description="Answers 429 from 2Chat"
    )
    _RATE_LIMIT_WAIT = _METER.create_histogram(
        "twochat.client.rate_limit.wait", unit="s", description="Waits for the rate budget"
    )
    _RETRIES = _METER.create_counter("twochat.client.retries", description="Requests sent again")


def _log_from_env() -> int | None:
    """``TWOCHAT_LOG=info|debug``: the SDK's logger at that level, on stderr if the program
    has no logging of its own. Return the level (``None``: not asked for)."""
    level = {"info": logging.INFO, "debug": logging.DEBUG}.get(
        os.environ.get("TWOCHAT_LOG", "").strip().lower()
    )
    if level is None:
        return None
    logger.setLevel(level)
    if not logging.getLogger().handlers and not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s twochat_async %(message)s"))
        logger.addHandler(handler)
    return level


#: TWOCHAT_LOG's level: lines per request (and, at debug, per wait) only when it is set,
#: so that a program logging at INFO hears nothing more of the SDK than before.
_LOG_LEVEL = _log_from_env()
#: Whether TWOCHAT_LOG=debug asks for the waits too (the transport times them only then).
DEBUG = _LOG_LEVEL == logging.DEBUG
