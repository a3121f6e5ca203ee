"""Traces: one sale followed from the till's request to the hub's PostgreSQL transaction (OpenTelemetry).

Off unless [telemetry] otlp_endpoint (or OTEL_EXPORTER_OTLP_ENDPOINT) names a collector: then `setup`
installs a tracer provider that batches spans to it over OTLP/HTTP, sampling `sample_ratio` of the
traces where they start (by trace id; the hub applies its own ratio under a remote parent too: `sampler`). Off, `tracer()` is OpenTelemetry's no-op tracer and the HTTP door adds no span.

Where a trace goes (each hop's code starts its own span with `tracer()`):

- the HTTP request (`asgi`, around every edge and hub request; a W3C `traceparent` header sent by the
  client is its parent), named by its route's template;
- the actor calls it makes carry it: edge_runtime runs each ask and tell in a copy of the caller's context;
- the sale's local commit (actors.storage.outbox), whose `traceparent` is stored with the outbox row, so a
  sale forwarded hours later, after a restart, still belongs to its request's trace;
- the publish to JetStream (novapos.adapters.nats), with its own `traceparent` in the message's headers;
- the hub's ingest (hub.ingest.traces): a span per event under the publish, with the PostgreSQL
  transaction that applied it, and a span per batch linked to each event's.

Spans carry ids and names (tenant, store, till, event id, type, route templates), never a path as
typed, a request body or anything a customer told the till.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, MutableMapping
from contextlib import contextmanager

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import SERVICE_NAME, SERVICE_VERSION, Resource
from opentelemetry.sdk.trace import SpanLimits, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import ParentBased, Sampler, TraceIdRatioBased
from opentelemetry.trace import SpanKind, StatusCode, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from novapos.__about__ import VERSION
from novapos.config.telemetry import TelemetrySettings

log = logging.getLogger(__name__)

TRACEPARENT = "traceparent"
"""The W3C Trace Context header: in HTTP requests, in NATS message headers, in the outbox's column."""
MAX_ATTRIBUTE_LENGTH = 256
"""A span attribute longer than this is cut: whatever a client sends cannot grow a span past it."""
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
"""Methods a span is named by; any other (a client's invention, of any length) is named "HTTP"."""
EXPORT_TIMEOUT_S = 5.0
"""How long one export to the collector may take; a collector away costs dropped spans, never a slow sale."""

_PROPAGATOR = TraceContextTextMapPropagator()
_NO_OP: Tracer = trace.NoOpTracer()
_tracer: Tracer = _NO_OP


def tracer() -> Tracer:
    """The process's tracer: the installed provider's, or a no-op one while traces are off."""
    return _tracer


def enabled() -> bool:
    return _tracer is not _NO_OP


def install(provider: trace.TracerProvider) -> None:
    """Make spans go to `provider` (setup's, or a test's with an in-memory exporter)."""
    global _tracer
    _tracer = provider.get_tracer("novapos", VERSION)


def uninstall() -> None:
    """Traces off again (spans already started end into the provider they came from)."""
    global _tracer
    _tracer = _NO_OP


def sampler(ratio: float, remote_decides: bool = True) -> Sampler:
    """`ratio` of the traces that start here; under a parent, its decision. With `remote_decides` False a remote
    parent's sampled flag (a store's, a browser's: whoever sent the traceparent) is not obeyed: the trace is
    sampled by `ratio` of its id, as a trace starting here (the span still links to its parent). A caller cannot
    make this process keep every trace it sends (the hub's span export load), nor hide it from its ratio. Sampling
    by trace id is consistent: a trace kept by a store at ratio r is kept by a hub at ratio r or more."""
    by_ratio = TraceIdRatioBased(ratio)
    if remote_decides:
        return ParentBased(by_ratio)
    return ParentBased(by_ratio, remote_parent_sampled=by_ratio, remote_parent_not_sampled=by_ratio)


def provider_for(settings: TelemetrySettings, default_service: str, remote_decides: bool = True) -> TracerProvider:
    """A provider exporting to settings.otlp_endpoint over OTLP/HTTP, in batches from a background thread;
    `remote_decides`: see sampler (False at the hub)."""
    resource = Resource.create({SERVICE_NAME: settings.service_name or default_service, SERVICE_VERSION: VERSION})
    provider = TracerProvider(resource=resource, sampler=sampler(settings.sample_ratio, remote_decides),
                              span_limits=SpanLimits(max_attribute_length=MAX_ATTRIBUTE_LENGTH))
    exporter = OTLPSpanExporter(endpoint=f"{settings.otlp_endpoint.rstrip('/')}/v1/traces", timeout=EXPORT_TIMEOUT_S)
    provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


def setup(settings: TelemetrySettings, default_service: str, remote_decides: bool = True) -> TracerProvider | None:
    """Install the exporting provider if an endpoint is set (the caller shuts it down at exit, which
    sends what is still batched); None, and traces off, otherwise."""
    if not settings.otlp_endpoint:
        log.debug("traces off: set [telemetry] otlp_endpoint (or OTEL_EXPORTER_OTLP_ENDPOINT) to send them")
        return None
    provider = provider_for(settings, default_service, remote_decides)
    install(provider)
    log.info("traces on: %.0f%% of them sent to %s over OTLP/HTTP as %s", settings.sample_ratio * 100,
             settings.otlp_endpoint, settings.service_name or default_service)
    return provider


def traceparent() -> str | None:
    """The current span's W3C traceparent, or None when there is none (traces off, no span)."""
    if not enabled():
        return None
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    return carrier.get(TRACEPARENT)


def with_traceparent(headers: MutableMapping[str, str]) -> MutableMapping[str, str]:
    """`headers` with the current span's traceparent added (NATS message headers), if there is one."""
    if (value := traceparent()) is not None:
        headers[TRACEPARENT] = value
    return headers


def parent(value: str | None) -> Context:
    """The context a traceparent names, to start a span under; a missing or malformed one is a new trace."""
    return _PROPAGATOR.extract({TRACEPARENT: value} if value else {})


def parent_from(headers: Mapping[str, str] | None) -> Context:
    """The context a message's or request's headers carry (see `parent`)."""
    return parent(headers.get(TRACEPARENT) if headers else None)


@contextmanager
def publishing(subject: str, event_id: str, traceparent_of_event: str | None) -> Iterator[dict[str, str]]:
    """A producer span for one message's publish, under the trace its event was committed in; yields the
    headers that carry it to the consumer (none while traces are off)."""
    if not enabled():
        yield {}
        return
    with _tracer.start_as_current_span("publish", context=parent(traceparent_of_event), kind=SpanKind.PRODUCER,
                                       attributes={"messaging.system": "nats", "messaging.operation.type": "send",
                                                   "messaging.destination.name": subject,
                                                   "messaging.message.id": event_id}):
        yield dict(with_traceparent({}))


def asgi(app: ASGIApp) -> ASGIApp:
    """`app` with a server span around each HTTP request while traces are on (see the module docstring)."""
    async def traced(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not enabled():
            await app(scope, receive, send)
            return
        method = scope["method"] if scope["method"] in METHODS else "HTTP"
        status = 0

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        with _tracer.start_as_current_span(method, context=parent_from(Headers(scope=scope)), kind=SpanKind.SERVER,
                                           attributes={"http.request.method": method}) as span:
            try:
                await app(scope, receive, sending)
            finally:
                template = getattr(scope.get("route"), "path", None)  # Starlette's matched route, if any
                if isinstance(template, str):
                    span.update_name(f"{method} {template}")
                    span.set_attribute("http.route", template)
                span.set_attribute("http.response.status_code", status)
                if status >= 500 or status == 0:
                    span.set_status(StatusCode.ERROR)
    return traced
