"""Traces as an operator gets them: the demo's edge and hub, as real processes, pointed at a collector by
OTEL_EXPORTER_OTLP_ENDPOINT, send their spans over OTLP/HTTP; one sale is one trace across both."""

from __future__ import annotations

import http.cookiejar
import json
import signal
import ssl
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from novapos.demo.provision import DEMO_USERS
from tests.demo_process import start_demo
from tests.pos import COFFEE

Span = tuple[str, str, bytes, bytes, bytes]
"""(service.name, span name, trace id, span id, parent span id) as the collector received it."""


class _Collector(BaseHTTPRequestHandler):
    spans: list[Span] = []
    lock = threading.Lock()

    def do_POST(self) -> None:
        request = ExportTraceServiceRequest.FromString(self.rfile.read(int(self.headers["Content-Length"])))
        with self.lock:
            for resource in request.resource_spans:
                service = next(a.value.string_value for a in resource.resource.attributes if a.key == "service.name")
                self.spans.extend((service, span.name, span.trace_id, span.span_id, span.parent_span_id)
                                  for scope in resource.scope_spans for span in scope.spans)
        self.send_response(200 if self.path == "/v1/traces" else 404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *_args: object) -> None:
        pass


@pytest.fixture
def collector() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Collector)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


_TRUST = ssl.create_default_context()
"""The browser's trust: the demo's CA is added if the demo serves HTTPS (a browser told to trust it)."""
_TILL = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()),
                                    urllib.request.HTTPSHandler(context=_TRUST))


def _post(url: str, body: dict[str, object]) -> dict[str, object]:
    request = urllib.request.Request(url, method="POST", data=json.dumps(body).encode(),
                                     headers={"content-type": "application/json"})
    with _TILL.open(request, timeout=5) as response:
        answer: dict[str, object] = json.loads(response.read())
        return answer


def _logged_in(till: str) -> bool:
    cashier = next(user for user in DEMO_USERS if user.pin is not None)
    try:
        _post(f"{till}/api/tills/till-1/login", {"login": cashier.login, "pin": cashier.pin})
        return True
    except (urllib.error.HTTPError, urllib.error.URLError):
        return False


def _wait(condition, timeout: float) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.2)


def test_the_demo_sends_one_trace_per_sale_from_both_processes(tmp_path: Path, collector: str) -> None:
    started = start_demo(tmp_path / "state", env={"OTEL_EXPORTER_OTLP_ENDPOINT": collector})
    demo, till_port = started.process, started.till_port
    try:
        banner = started.banner()
        till = f"https://127.0.0.1:{till_port}"
        if till in banner:  # the demo runs with TLS: trust its CA
            _TRUST.load_verify_locations(cafile=tmp_path / "state" / "tls" / "ca.pem")
        else:
            till = f"http://127.0.0.1:{till_port}"
        _wait(lambda: _logged_in(till), 60)
        cart = _post(f"{till}/api/tills/till-1/lines", {"barcode": COFFEE, "quantity": 1})["cart"]
        _post(f"{till}/api/tills/till-1/tenders", {"amount_minor": 500})
        sale = _post(f"{till}/api/tills/till-1/complete", {"cart": cart})["sale"]
        assert isinstance(sale, str)

        def reached_the_database() -> bool:
            with _Collector.lock:
                requests = [s for s in _Collector.spans if s[1] == "POST /api/tills/{till}/complete"]
                return bool(requests) and any(s[0] == "novapos-hub" and s[1] == "postgresql apply"
                                              and s[2] == requests[0][2] for s in _Collector.spans)
        _wait(reached_the_database, 30)  # the batch processor sends every 5 s
    finally:
        demo.send_signal(signal.SIGINT)
        output, _ = demo.communicate(timeout=60)
    assert demo.returncode == 0, output
    [request] = [s for s in _Collector.spans if s[1] == "POST /api/tills/{till}/complete"]
    trace = {(service, name) for service, name, trace_id, _, _ in _Collector.spans if trace_id == request[2]}
    assert trace >= {("novapos-edge", "POST /api/tills/{till}/complete"), ("novapos-edge", "outbox commit"),
                     ("novapos-edge", "publish"), ("novapos-hub", "ingest"), ("novapos-hub", "postgresql apply")}
