"""novapos.logs: the context a line carries (bound at the doors, across threads, tasks and the asyncio seam), the
current span's trace ids, the request id of an HTTP request, and nothing but JSON on stderr in JSON mode."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import trio
from opentelemetry.sdk.trace import TracerProvider
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from edge_runtime import AsyncioSeam
from novapos import logs
from novapos.adapters.http import route, serve, with_api_errors
from novapos.adapters.nats import NatsLink
from novapos.demo.embedded_nats import EmbeddedNats


class Lines(logging.Handler):
    """The JSON lines logged through the filter and formatter `setup` installs."""

    def __init__(self) -> None:
        super().__init__()
        self.addFilter(logs.ContextFilter())
        self.setFormatter(logs.JsonFormatter("test"))
        self.lines: list[dict[str, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(json.loads(self.format(record)))


@pytest.fixture(autouse=True)
def no_process_fields(monkeypatch: pytest.MonkeyPatch) -> None:
    """An edge run earlier in this test process bound its store for the whole process."""
    monkeypatch.setattr(logs, "_process", logs._EMPTY)


@pytest.fixture
def lines() -> Iterator[list[dict[str, str]]]:
    handler, logger = Lines(), logging.getLogger("test.logs")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield handler.lines
    finally:
        logger.removeHandler(handler)


log = logging.getLogger("test.logs")


def _context(line: dict[str, str]) -> dict[str, str]:
    return {name: value for name, value in line.items() if name not in ("ts", "level", "logger", "msg", "process")}


def test_a_line_carries_what_the_blocks_around_it_bound_and_no_more(lines: list[dict[str, str]]) -> None:
    with logs.bound(tenant="demo", store="store-001"):
        with logs.bound(till="till-1", request="r1"):
            logs.bind(sale="s1")  # what a handler learns, for the rest of its door's block
            log.info("inside")
            with logs.bound(request=None):
                log.info("request unbound")
            with logs.detached(event="e1"):
                log.info("detached")
        log.info("outside")
    log.info("nothing bound")
    assert [_context(line) for line in lines] == [
        {"tenant": "demo", "store": "store-001", "till": "till-1", "request": "r1", "sale": "s1"},
        {"tenant": "demo", "store": "store-001", "till": "till-1", "sale": "s1"},
        {"event": "e1"},
        {"tenant": "demo", "store": "store-001"},
        {}]
    assert lines[0]["process"] == "test" and lines[0]["msg"] == "inside"
    with pytest.raises(ValueError, match="unknown log context fields \\['pin'\\]"):
        with logs.bound(pin="1234"):
            pass


def test_process_fields_reach_every_thread_and_a_threads_binding_stays_in_it(
        lines: list[dict[str, str]], monkeypatch: pytest.MonkeyPatch) -> None:
    logs.bind_process(tenant="demo", store="store-001")

    def other() -> None:
        log.info("other thread")
    with logs.bound(till="till-1"):
        thread = threading.Thread(target=other)
        thread.start()
        thread.join()
    assert _context(lines[0]) == {"tenant": "demo", "store": "store-001"}


def test_the_current_spans_trace_ids_are_on_the_line(lines: list[dict[str, str]]) -> None:
    tracer = TracerProvider().get_tracer("test")
    with tracer.start_as_current_span("request") as span:
        log.info("in a span")
    log.info("no span")
    context = span.get_span_context()
    assert lines[0]["trace_id"] == f"{context.trace_id:032x}" and lines[0]["span_id"] == f"{context.span_id:016x}"
    assert "trace_id" not in lines[1] and "span_id" not in lines[1]


def test_a_field_cannot_forge_a_line_or_reverse_one(lines: list[dict[str, str]]) -> None:
    with logs.bound(till="a\nb\u202ec"):
        log.info("hostile")
    assert lines[0]["till"] == "a\\nb\\u202ec"
    plain = logs.PlainFormatter("%(message)s")
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "hostile", None, None)
    logs.ContextFilter().filter(record)
    assert plain.format(record) == "hostile"  # nothing bound: nothing added
    with logs.bound(till="a\nb", sale="s1"):
        logs.ContextFilter().filter(record)
    assert plain.format(record) == "hostile [till=a\\nb sale=s1]"


@pytest.mark.parametrize(("sent", "kept"), [("lb-7f3a.9", True), (None, False), ("a b", False), ("x\n", False),
                                            ("y" * 65, False)])
def test_a_request_id_sent_is_kept_only_if_it_is_a_plain_token(sent: str | None, kept: bool) -> None:
    made = logs.request_id(sent)
    assert made == sent if kept else re.fullmatch(r"[0-9a-f]{16}", made)


async def test_an_http_request_has_an_id_its_lines_carry_and_its_answer_names() -> None:
    async def context(_request: Request) -> Response:
        return JSONResponse(logs.current())
    app = with_api_errors(Starlette(routes=[route("/context", GET=context)]))
    async with trio.open_nursery() as nursery:
        urls = await nursery.start(serve, app, "127.0.0.1", 0)
        async with httpx.AsyncClient(base_url=urls[0]) as http:
            first, second = (await http.get("/context")), (await http.get("/context"))
            sent = await http.get("/context", headers={"x-request-id": "lb-42"})
            refused = await http.get("/nowhere")
        nursery.cancel_scope.cancel()
    assert first.json()["request"] == first.headers["x-request-id"] != second.headers["x-request-id"]
    assert sent.json()["request"] == sent.headers["x-request-id"] == "lb-42"
    assert refused.status_code == 404 and re.fullmatch(r"[0-9a-f]{16}", refused.headers["x-request-id"])


async def test_the_asyncio_seam_runs_a_call_in_its_callers_context() -> None:
    async def on_loop() -> dict[str, str]:
        with logs.bound(sale="s1"):  # bound there: never seen back here
            pass
        return logs.current()
    with AsyncioSeam() as seam:
        with logs.bound(request="r1"):
            assert await seam.run(on_loop) == {"request": "r1"}
        with logs.bound(till="till-1"):  # from a thread (an actor's): that thread's context
            assert await trio.to_thread.run_sync(seam.run_blocking, on_loop) == {"till": "till-1"}
        assert await seam.run(on_loop) == {}  # nothing stays bound on the loop's side


def test_in_json_mode_stderr_holds_only_json_lines() -> None:
    """A warning, an exception in a thread, one Python cannot raise and the one that ends the process: all JSON."""
    program = """if True:
        import gc, logging, threading, warnings
        from novapos import logs
        logs.setup("probe")
        with logs.bound(till="till-1"):
            logging.getLogger("probe").info("hello")
        warnings.warn("careful")
        thread = threading.Thread(target=lambda: 1 / 0, name="worker")
        thread.start(); thread.join()
        class Broken:
            def __del__(self):
                raise RuntimeError("in __del__")
        Broken(); gc.collect()
        raise KeyError("the end")
    """
    result = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=60,
                            env={**os.environ, "NOVAPOS_LOG_FORMAT": "json"})
    assert result.returncode == 1
    entries = [json.loads(line) for line in result.stderr.splitlines()]
    assert [(entry["level"], entry["logger"]) for entry in entries] == [
        ("info", "probe"), ("warning", "py.warnings"), ("error", "novapos.uncaught"),
        ("warning", "novapos.uncaught"), ("critical", "novapos.uncaught")]
    assert entries[0]["till"] == "till-1" and all(entry["process"] == "probe" for entry in entries)
    assert "ZeroDivisionError" in entries[2]["exc"] and "worker" in entries[2]["msg"]
    assert "in __del__" in entries[3]["exc"] and "KeyError: 'the end'" in entries[4]["exc"]


def test_a_server_address_is_logged_without_the_credentials_it_carries() -> None:
    assert logs.address("nats://alice:s3cret@127.0.0.1:4222, tls://t0ken@[::1]:4443") == \
        "nats://127.0.0.1:4222,tls://[::1]:4443"
    assert logs.address("postgresql://novapos:pw@db.internal/novapos?sslmode=require") == "postgresql://db.internal"


async def test_the_nats_link_says_where_it_connected_and_never_the_password(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "users.conf").write_text('authorization { users = [{user: "alice", password: "s3cret"}] }\n')
    caplog.set_level(logging.INFO, "novapos.adapters.nats")
    with EmbeddedNats(tmp_path / "nats", authorization=tmp_path / "users.conf") as server, AsyncioSeam() as seam:
        link = NatsLink(server.url.replace("://", "://alice:s3cret@", 1), "probe", tls=server.client_tls())
        await seam.run(link.connect, 5.0)
        await seam.run(link.close)
    assert f"connected to NATS at {logs.address(server.url)} as probe" in caplog.text
    assert "s3cret" not in caplog.text and "alice" not in caplog.text
