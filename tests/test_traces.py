"""Traces: one sale is one trace from the till's request to the hub's PostgreSQL transaction, its context kept
with the outbox row (across an edge restart too) and carried in the NATS message's headers; traces off adds
nothing; a malformed traceparent starts a new trace; with an endpoint, spans go out over OTLP/HTTP."""

from __future__ import annotations

import sqlite3
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
import trio
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from actors.storage.db import MIGRATIONS, connect
from actors.storage.outbox import Committed, Outbox
from edge.app import run_edge
from hub.app import run_hub
from novapos import tracing
from novapos.config import HubConfig, StoreConfig
from novapos.config.telemetry import TelemetrySettings
from novapos.demo.embedded_nats import EmbeddedNats
from novapos.wire.subjects import EVENTS_STREAM
from tests.conftest import ensure_stream, query, wait_until
from tests.events import sale_event
from tests.pos import MILK, sell


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """Traces on, into memory, for this test only."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.install(provider)
    try:
        yield exporter
    finally:
        tracing.uninstall()
        provider.shutdown()


def _named(finished: tuple[ReadableSpan, ...], name: str) -> list[ReadableSpan]:
    return [span for span in finished if span.name == name]


def _child_of(span: ReadableSpan, parent: ReadableSpan) -> bool:
    return (span.parent is not None and span.parent.span_id == parent.context.span_id
            and span.context.trace_id == parent.context.trace_id)


async def test_one_sale_is_one_trace_from_the_till_request_to_postgresql(
        spans: InMemorySpanExporter, store_config: StoreConfig, hub_config: HubConfig, database_url: str,
        http: httpx.AsyncClient) -> None:
    async with trio.open_nursery() as nursery:
        await nursery.start(run_hub, hub_config)
        edge = await nursery.start(run_edge, store_config)
        receipt = await sell(http, edge.url, [(MILK, 1)])
        sale = str(uuid.UUID(receipt["sale"]))
        await wait_until(lambda: query(database_url, "SELECT 1 FROM sales WHERE event_id = $1", uuid.UUID(sale)))

        def ingested() -> list[ReadableSpan]:
            return [span for span in _named(spans.get_finished_spans(), "ingest")
                    if (span.attributes or {}).get("novapos.event.id") == sale]
        await wait_until(lambda: _now(ingested()))
        nursery.cancel_scope.cancel()

    finished = spans.get_finished_spans()
    [request] = _named(finished, "POST /api/tills/{till}/complete")
    assert request.kind == SpanKind.SERVER and request.parent is None
    assert (request.attributes or {})["http.response.status_code"] == 200
    trace = [span for span in finished if span.context.trace_id == request.context.trace_id]
    [commit] = [span for span in _named(trace, "outbox commit") if (span.attributes or {})["novapos.event.id"] == sale]
    assert _child_of(commit, request), "the commit ran in the till actor and the outbox actor, under the request"
    assert (commit.attributes or {})["novapos.event.type"] == "sale.completed"
    [publish] = [span for span in _named(trace, "publish") if span.status.status_code != StatusCode.ERROR]
    assert _child_of(publish, commit) and publish.kind == SpanKind.PRODUCER
    [ingest] = ingested()
    assert _child_of(ingest, publish), "the hub took the context from the message's traceparent header"
    assert ingest.kind == SpanKind.CONSUMER and (ingest.attributes or {})["novapos.store"] == "store-001"
    [database] = [span for span in _named(trace, "postgresql apply") if _child_of(span, ingest)]
    assert (database.attributes or {})["db.system.name"] == "postgresql"
    assert ingest.start_time is not None and database.start_time is not None and database.end_time is not None
    assert ingest.start_time <= database.start_time < database.end_time

    [batch] = [span for span in _named(finished, "ingest batch")
               if any(link.context.span_id == publish.context.span_id for link in span.links)]
    assert batch.context.trace_id != request.context.trace_id, "a batch is its own trace, linked to its events'"
    assert [link.context.span_id for link in ingest.links] == [batch.context.span_id]
    [transaction] = [span for span in _named(finished, "postgresql apply") if _child_of(span, batch)]
    assert transaction.start_time == database.start_time and transaction.end_time == database.end_time


def _names(traceparent: str | None, span: ReadableSpan) -> bool:
    """Whether a W3C traceparent names `span`, sampled."""
    version, trace_id, span_id, flags = (traceparent or "").split("-")
    return ((version, trace_id, span_id) == ("00", f"{span.context.trace_id:032x}", f"{span.context.span_id:016x}")
            and int(flags, 16) & 1 == 1)


async def _now(value: object) -> object:
    return value


async def test_a_sale_forwarded_after_a_restart_stays_in_its_trace(
        spans: InMemorySpanExporter, store_config: StoreConfig, nats_server: EmbeddedNats,
        http: httpx.AsyncClient) -> None:
    """No stream while the sale is made: it waits in the outbox, and only the row can carry its context over the
    restart (the forwarder's drain runs in no request's context)."""
    async with trio.open_nursery() as nursery:
        edge = await nursery.start(run_edge, store_config)
        receipt = await sell(http, edge.url, [(MILK, 1)])
        assert await edge.tree.ask("outbox", "depth") == 1
        nursery.cancel_scope.cancel()
    row = sqlite3.connect(store_config.state_dir / "edge.sqlite3").execute(
        "SELECT id, traceparent FROM outbox").fetchone()
    [commit] = [span for span in _named(spans.get_finished_spans(), "outbox commit")
                if (span.attributes or {})["novapos.event.id"] == row[0] == receipt["sale"]]
    assert _names(row[1], commit)

    await ensure_stream(nats_server)
    spans.clear()
    async with trio.open_nursery() as nursery:
        edge = await nursery.start(run_edge, store_config)
        await wait_until(lambda: _depth_zero(edge))
        nursery.cancel_scope.cancel()
    [publish] = [span for span in _named(spans.get_finished_spans(), "publish")
                 if span.status.status_code != StatusCode.ERROR]
    assert _child_of(publish, commit)
    assert (publish.attributes or {})["messaging.message.id"] == receipt["sale"]


async def _depth_zero(edge) -> bool:  # type: ignore[no-untyped-def]
    return await edge.tree.ask("outbox", "depth") == 0


async def test_traces_off_add_no_span_and_no_context(store_config: StoreConfig, nats_server: EmbeddedNats,
                                                     http: httpx.AsyncClient) -> None:
    """Off (the default): the door passes requests straight on, rows carry no context, messages no header."""
    assert not tracing.enabled()
    await ensure_stream(nats_server)
    async with trio.open_nursery() as nursery:
        edge = await nursery.start(run_edge, store_config)
        receipt = await sell(http, edge.url, [(MILK, 1)])
        await wait_until(lambda: _depth_zero(edge))
        nursery.cancel_scope.cancel()
    headers = await trio.to_thread.run_sync(_first_message_headers, nats_server)
    assert headers is not None and headers.get("Nats-Msg-Id", "").endswith(receipt["sale"])
    assert tracing.TRACEPARENT not in headers


def _first_message_headers(nats_server: EmbeddedNats) -> dict[str, str] | None:
    import asyncio

    async def run() -> dict[str, str] | None:
        link = nats_server.hub_link()
        await link.connect()
        try:
            message = await link.js.get_msg(EVENTS_STREAM, seq=1)
            return message.headers
        finally:
            await link.close()
    return asyncio.run(run())


async def test_a_malformed_traceparent_starts_a_new_trace_and_odd_methods_name_no_span(
        spans: InMemorySpanExporter, store_config: StoreConfig, http: httpx.AsyncClient) -> None:
    async with trio.open_nursery() as nursery:
        edge = await nursery.start(run_edge, store_config)
        given = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
        for value in ("garbage", "00-" + "0" * 32 + "-" + "0" * 16 + "-01", "x" * 10_000, given):
            response = await http.get(f"{edge.url}/healthz", headers={"traceparent": value})
            assert response.status_code == 200
        response = await http.request("BREW" * 50, f"{edge.url}/healthz")
        assert response.status_code == 405
        nursery.cancel_scope.cancel()
    health = _named(spans.get_finished_spans(), "GET /healthz")
    assert len(health) == 4
    assert [span.parent is None for span in health] == [True, True, True, False]
    assert health[3].context.trace_id == 0x0af7651916cd43dd8448eb211c80319c, "a well-formed one is followed"
    [odd] = [span for span in spans.get_finished_spans() if span.name.startswith("HTTP")]
    assert odd.name in ("HTTP", "HTTP /healthz") and len(odd.name) < 20


def test_the_outbox_keeps_the_commit_context_with_the_row(spans: InMemorySpanExporter, tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "edge.sqlite3", "demo", "store-001")
    try:
        with tracing.tracer().start_as_current_span("request") as request:
            committed = outbox.append("sale.completed", 1, sale_event().body)
        assert isinstance(committed, Committed)
        [pending] = outbox.pending(10)
    finally:
        outbox.close()
    [commit] = _named(spans.get_finished_spans(), "outbox commit")
    assert commit.parent is not None and commit.parent.span_id == request.get_span_context().span_id
    assert _names(pending.traceparent, commit)


def test_unsent_rows_from_before_version_10_are_kept_without_context(tmp_path: Path) -> None:
    path = tmp_path / "edge.sqlite3"
    db = sqlite3.connect(path, isolation_level=None)
    for migration in MIGRATIONS[:9]:
        migration(db)
    db.execute("PRAGMA user_version = 9")
    db.execute("INSERT INTO outbox (seq, id, subject, payload) VALUES (1, 'e1', 's', x'00')")
    db.close()
    connect(path).close()
    outbox = Outbox(path, "demo", "store-001")
    try:
        assert [(item.event_id, item.traceparent) for item in outbox.pending(10)] == [("e1", None)]
    finally:
        outbox.close()


class _Collector(BaseHTTPRequestHandler):
    received: list[tuple[str, str, bytes]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append((self.path, self.headers["Content-Type"], body))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *_args: object) -> None:
        pass


def test_spans_go_to_the_configured_collector_over_otlp_http() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Collector)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        settings = TelemetrySettings(f"http://127.0.0.1:{server.server_address[1]}/", "store-7-box", 1.0)
        provider = tracing.provider_for(settings, "novapos-edge")
        provider.get_tracer("test").start_span("outbox commit").end()
        provider.shutdown()  # sends what is batched
    finally:
        server.shutdown()
    [(path, content_type, body)] = _Collector.received
    assert (path, content_type) == ("/v1/traces", "application/x-protobuf")
    assert b"outbox commit" in body and b"store-7-box" in body


def test_the_hub_samples_by_its_own_ratio_whatever_the_store_s_flag_says() -> None:
    """A store cannot make the hub keep every trace (its sampled flag), nor hide one from it: the hub samples by
    its own ratio of the trace id, its span still the store's span's child. The store follows its own parents."""
    store = tracing.provider_for(TelemetrySettings("http://127.0.0.1:9/", "", 1.0), "novapos-edge")
    keeps_none = tracing.provider_for(TelemetrySettings("http://127.0.0.1:9/", "", 0.0), "novapos-hub",
                                      remote_decides=False)
    keeps_all = tracing.provider_for(TelemetrySettings("http://127.0.0.1:9/", "", 1.0), "novapos-hub",
                                     remote_decides=False)
    tracing.install(store)
    try:
        with tracing.tracer().start_as_current_span("request") as request:
            assert request.is_recording()
            value = tracing.traceparent()
        assert value is not None and int(value.rsplit("-", 1)[1], 16) & 1 == 1  # sampled, says the store
        assert not keeps_none.get_tracer("test").start_span("ingest", context=tracing.parent(value)).is_recording()
        unsampled = value[:-2] + "00"
        span = keeps_all.get_tracer("test").start_span("ingest", context=tracing.parent(unsampled))
        assert span.is_recording()
        assert span.parent is not None and span.parent.span_id == request.get_span_context().span_id
        assert span.get_span_context().trace_id == request.get_span_context().trace_id
        edge = tracing.provider_for(TelemetrySettings("http://127.0.0.1:9/", "", 0.0), "novapos-edge")
        assert edge.get_tracer("test").start_span("x", context=tracing.parent(value)).is_recording()  # obeys
        edge.shutdown()
    finally:
        tracing.uninstall()
        store.shutdown()
        keeps_none.shutdown()
        keeps_all.shutdown()
