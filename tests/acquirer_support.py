"""The acquirer simulator for tests: `running_acquirer(...)` serves mocks.acquirer on a free port, and
`receiving_webhooks()` is a real socket server that keeps the webhooks posted to it (for tests that check the
simulator's side without a hub).

    with running_acquirer(webhook_url=hub_url, secrets=("whsec_test",)) as acquirer:
        gateway = HttpGateway(acquirer.url, "simulator", timeout_s=2)
        ...
        acquirer.pay(checkout.provider_ref)          # the customer's phone presses Pay
        assert acquirer.executions(key) == 1          # one charge, however often the key was sent
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

from mocks.acquirer import Acquirer, AcquirerServer

TEST_SECRET = "whsec_test_0123456789abcdef"


class RunningAcquirer:
    """The simulator's address and its levers (the /control/ endpoints, over HTTP like any client)."""

    def __init__(self, server: AcquirerServer) -> None:
        self.server = server
        self.acquirer: Acquirer = server.acquirer
        self.url = server.url

    def control(self, command: str, **body: Any) -> dict[str, Any]:
        """POST /control/<command> with `body`; the answer's JSON (AssertionError unless 200)."""
        response = httpx.post(f"{self.url}/control/{command}", json=body, timeout=30)
        assert response.status_code == 200, response.text
        answer: dict[str, Any] = response.json()
        return answer

    def state(self) -> dict[str, Any]:
        """{executions: {key: n}, payments: {ref: payment}, webhooks: {id: {body, deliveries}}, secrets}."""
        answer: dict[str, Any] = httpx.get(f"{self.url}/control/state", timeout=10).json()
        return answer

    def executions(self, key: str) -> int:
        """How many times the call made with `key` was carried out (0: never seen)."""
        return int(self.state()["executions"].get(key, 0))

    def payment(self, ref: str) -> dict[str, Any]:
        payment: dict[str, Any] = self.state()["payments"][ref]
        return payment

    def delay(self, seconds: float, count: int | None = None) -> None:
        """Answer the next `count` calls (None: all of them) `seconds` late."""
        self.control("delay", seconds=seconds, count=count)

    def slow(self, seconds: float) -> None:
        """How late amounts ending in 92 are answered."""
        self.control("slow", seconds=seconds)

    def hold(self, count: int = 1) -> None:
        """Carry out the next `count` calls but keep their answers until `release` (or forever: the client
        times out)."""
        self.control("hold", count=count)

    def drop(self, count: int = 1, mode: str = "close") -> None:
        """Lose the next `count` calls before they reach the provider (nothing is done; status says never seen):
        the connection is closed unanswered, or (mode "503") answered 503."""
        self.control("drop", count=count, mode=mode)

    def release(self) -> None:
        self.control("release")

    def drift(self, change: str, *, day: str = "", provider_ref: str = "", amount_minor: int = 0,
              state: str = "failed") -> None:
        """Change the settlement report of `day` (today): drop, extra, amount or state of a line."""
        self.control("drift", change=change, day=day, provider_ref=provider_ref, amount_minor=amount_minor,
                     state=state)

    def rotate(self, secret: str | None = None, keep_previous: bool = True) -> list[str]:
        """A new webhook signing secret (newest first in the answer and the secrets file)."""
        secrets: list[str] = self.control("rotate", secret=secret, keep_previous=keep_previous)["secrets"]
        return secrets

    def replay(self, event: str, fresh_signature: bool = False) -> int | str:
        """Send webhook `event` again: the same bytes and signature (a replay), or re-signed now; the hub's status."""
        delivered: int | str = self.control("replay", event=event, fresh_signature=fresh_signature)["delivered"]
        return delivered

    def expire(self, ref: str) -> None:
        """Let QR checkout `ref` expire now."""
        self.control("expire", ref=ref)

    def pay(self, ref: str) -> str:
        """The customer's phone presses Pay on the checkout's page; the page's text."""
        return self._press(ref, "pay")

    def decline(self, ref: str) -> str:
        return self._press(ref, "decline")

    def _press(self, ref: str, button: str) -> str:
        response = httpx.post(f"{self.url}/pay/{ref}/{button}", data={"press": button}, timeout=60)
        assert response.status_code == 200, response.text
        return response.text

    def report_terminal_approval(self, reference: str, amount_minor: int, currency: str = "EUR",
                                 card: str = "4242424242424242") -> dict[str, Any]:
        """What the mock terminal's hook posts for an approval."""
        response = httpx.post(f"{self.url}/v1/terminal_authorizations", timeout=10,
                              headers={"Idempotency-Key": f"terminal-{reference}"},
                              json={"reference": reference, "amount_minor": amount_minor, "currency": currency,
                                    "card": card})
        assert response.status_code == 200, response.text
        answer: dict[str, Any] = response.json()
        return answer


@contextmanager
def running_acquirer(webhook_url: str | None = None, secrets: tuple[str, ...] = (TEST_SECRET,), *,
                     secrets_file: Path | None = None, slow_s: float = 2.0, lost_answer_s: float = 30.0,
                     qr_ttl_s: int = 900) -> Iterator[RunningAcquirer]:
    """The simulator on a free port for the block. `secrets_file`: where a rotation writes the secrets."""
    acquirer = Acquirer(list(secrets), secrets_file=secrets_file, webhook_url=webhook_url or "", slow_s=slow_s,
                        lost_answer_s=lost_answer_s, qr_ttl_s=qr_ttl_s)
    server = AcquirerServer(acquirer).start()
    try:
        yield RunningAcquirer(server)
    finally:
        server.stop()


@dataclass
class Received:
    """A webhook as it arrived: the raw body and its headers (looked up without regard to case)."""
    body: bytes
    headers: Message

    def json(self) -> dict[str, Any]:
        event: dict[str, Any] = json.loads(self.body)
        return event


@dataclass
class WebhookReceiver:
    url: str
    received: list[Received] = field(default_factory=list)
    status: int = 200
    """What the receiver answers (set 500 to see the simulator retry)."""
    arrived: threading.Condition = field(default_factory=threading.Condition)

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Received]:
        """The first `count` webhooks, waiting for them to arrive."""
        deadline = time.monotonic() + timeout
        with self.arrived:
            while len(self.received) < count:
                left = deadline - time.monotonic()
                assert left > 0, f"{len(self.received)} of {count} webhooks arrived"
                self.arrived.wait(left)
            return list(self.received[:count])


@contextmanager
def receiving_webhooks() -> Iterator[WebhookReceiver]:
    """A webhook endpoint on a free port (any path) that keeps what it is sent."""
    receiver: WebhookReceiver

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            with receiver.arrived:
                receiver.received.append(Received(body, self.headers))
                receiver.arrived.notify_all()
            self.send_response(receiver.status)
            self.send_header("Content-Length", "0")
            self.end_headers()

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    receiver = WebhookReceiver(f"http://127.0.0.1:{server.server_address[1]}/hooks")
    thread = threading.Thread(target=server.serve_forever, name="webhook-receiver", daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
