"""Log lines name a database's error without its text (its DETAIL quotes a row's values: a customer's data), and
work detached from its trigger carries neither the trigger's log fields nor its trace."""

from __future__ import annotations

import asyncio
import logging

import asyncpg
import httpx
import pytest
from opentelemetry.sdk.trace import TracerProvider
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from hub.db import create_pool, migrate
from hub.ingest.inbox import Delivery, ingest
from novapos import logs
from novapos.adapters.http import _served, with_api_errors
from tests.events import SUBJECT, sale_event

SECRET = "sess-4155550123"
"""A value of a row: it may be in PostgreSQL (a dead letter's reason), never in a log line."""


def test_an_event_the_database_refuses_is_logged_without_the_row_s_values(
        database_url: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    first, second = sale_event(seq=1), sale_event(seq=2)
    first.body["session"], second.body["session"] = "sess-1", SECRET

    async def scenario() -> list[asyncpg.Record]:
        pool = await create_pool(database_url)
        try:
            await migrate(pool)
            await pool.execute(f"ALTER TABLE sales ADD CONSTRAINT sales_no_such_session CHECK (session <> '{SECRET}')")
            result = await ingest(pool, [Delivery(SUBJECT, e.encode()) for e in (first, second)], frozenset({"demo"}))
            assert (result.applied, result.rejected) == (1, 1)
            return await pool.fetch("SELECT reason FROM dead_letters")
        finally:
            await pool.close()
    [dead] = asyncio.run(scenario())
    assert SECRET in dead["reason"]  # the operator reads the whole text where it is kept, in PostgreSQL
    assert "CheckViolationError (SQLSTATE 23514, schema public, table sales_" in caplog.text  # the month's partition
    assert "constraint sales_no_such_session)" in caplog.text
    assert SECRET not in caplog.text and "DETAIL" not in caplog.text


def test_a_request_failing_on_a_database_error_is_logged_without_its_text(caplog: pytest.LogCaptureFixture) -> None:
    def failing(_request: Request) -> Response:
        raise asyncpg.PostgresError.new({"C": "23505", "M": f'duplicate key value violates "customers_phone" ({SECRET})',
                                         "D": f"Key (phone)=({SECRET}) already exists.", "t": "customers",
                                         "n": "customers_phone"})

    def wrapped(_request: Request) -> Response:
        try:
            failing(_request)
        except asyncpg.PostgresError as exc:
            raise RuntimeError("saving the customer failed") from exc
        return Response()

    app = _served(with_api_errors(Starlette(routes=[Route("/x", failing), Route("/y", wrapped)])), "localhost")

    async def scenario() -> list[int]:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app, raise_app_exceptions=False),
                                     base_url="http://localhost:8080") as client:
            return [(await client.get(path)).status_code for path in ("/x", "/y")]
    caplog.set_level(logging.INFO)
    assert asyncio.run(scenario()) == [500, 500]
    assert caplog.text.count("UniqueViolationError (SQLSTATE 23505, table customers, constraint customers_phone)") == 2
    assert "test_logs_private_errors.py" in caplog.text  # where it was raised, to find the bug
    assert SECRET not in caplog.text


def test_detached_work_carries_neither_the_trigger_s_fields_nor_its_trace(caplog: pytest.LogCaptureFixture) -> None:
    provider = TracerProvider()
    tracer = provider.get_tracer("test")
    try:
        with tracer.start_as_current_span("till request") as request, logs.bound(till="till-1", request="r-1"):
            assert logs.current()["trace_id"] == f"{request.get_span_context().trace_id:032x}"
            with logs.detached(store="store-001"):
                fields = logs.current()
                assert fields["store"] == "store-001"
                assert not {"till", "request", "trace_id", "span_id"} & set(fields)
                with tracer.start_as_current_span("forward") as forward:
                    assert forward.parent is None  # a trace of its own
                    assert forward.get_span_context().trace_id != request.get_span_context().trace_id
            assert logs.current()["trace_id"] == f"{request.get_span_context().trace_id:032x}"  # back afterwards
    finally:
        provider.shutdown()
