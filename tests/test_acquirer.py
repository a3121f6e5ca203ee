"""The acquirer simulator (mocks.acquirer) and the hub's HttpGateway against it, over a real socket."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Awaitable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from drivers.payment_terminal import SerialPaymentTerminal
from hub.payments.acquirer import GATEWAY_SECONDS, BadAnswer, HttpGateway
from hub.payments.gateway import GatewayTimeout, GatewayUnavailable, Outcome
from mocks.acquirer import APPROVE, DECLINE, PARTIAL, SETTLEMENT_FAILS, read_secrets, terminal_reporter
from mocks.payment_terminal import PaymentTerminalMock
from novapos.demo.payments import demo_acquirer, hub_settings, webhook_secrets
from tests.acquirer_support import TEST_SECRET, receiving_webhooks, running_acquirer

T = TypeVar("T")


def run(coroutine: Awaitable[T]) -> T:
    async def main() -> T:
        return await coroutine
    return asyncio.run(main())


def gateway_call(url: str, name: str, *args: object, timeout_s: float = 5.0, **kwargs: object) -> Any:
    """One gateway call in a fresh event loop (each test is a plain function): its Answer, QrCheckout..."""
    async def call() -> Any:
        gateway = HttpGateway(url, "simulator", timeout_s)
        try:
            return await getattr(gateway, name)(*args, **kwargs)
        finally:
            await gateway.aclose()
    return asyncio.run(call())


def test_scripted_cards_authorize_decline_partial() -> None:
    with running_acquirer() as acquirer:
        approved = gateway_call(acquirer.url, "authorize", "k-approve", 1250, "EUR", APPROVE)
        assert approved.outcome is Outcome.AUTHORIZED and approved.amount_minor == 1250 and approved.auth_code
        declined = gateway_call(acquirer.url, "authorize", "k-decline", 1250, "EUR", DECLINE)
        assert declined.outcome is Outcome.DECLINED and declined.amount_minor == 0
        assert "declined" in declined.message
        assert GATEWAY_SECONDS.labels("authorize", "declined")._sum.get() > 0
        partial = gateway_call(acquirer.url, "authorize", "k-partial", 1250, "EUR", PARTIAL)
        assert partial.outcome is Outcome.AUTHORIZED and partial.amount_minor == 625
        taken = gateway_call(acquirer.url, "authorize", "k-capture", 700, "EUR", "tok_visa", capture=True)
        assert taken.outcome is Outcome.CAPTURED and taken.amount_minor == 700
        unknown = gateway_call(acquirer.url, "authorize", "k-unknown", 700, "EUR", "tok_nobody")
        assert unknown.outcome is Outcome.DECLINED


def test_capture_cancel_refund_and_their_refusals() -> None:
    with running_acquirer() as acquirer:
        url = acquirer.url
        ref = gateway_call(url, "authorize", "a1", 5000, "EUR", APPROVE).provider_ref
        too_much = gateway_call(url, "capture", "c0", ref, 5001)
        assert too_much.outcome is Outcome.DECLINED and "5000" in too_much.message
        captured = gateway_call(url, "capture", "c1", ref, 4000)
        assert (captured.outcome, captured.provider_ref, captured.amount_minor) == (Outcome.CAPTURED, ref, 4000)
        assert gateway_call(url, "cancel", "x1", ref).outcome is Outcome.DECLINED  # captured: too late
        first = gateway_call(url, "refund", "r1", ref, 1500)
        assert first.outcome is Outcome.REFUNDED and first.amount_minor == 1500 and first.provider_ref != ref
        assert gateway_call(url, "refund", "r2", ref, 2501).outcome is Outcome.DECLINED
        assert gateway_call(url, "refund", "r3", ref, 2500).outcome is Outcome.REFUNDED
        assert acquirer.payment(ref)["status"] == "refunded"
        other = gateway_call(url, "authorize", "a2", 900, "EUR", APPROVE).provider_ref
        cancelled = gateway_call(url, "cancel", "x2", other)
        assert cancelled.outcome is Outcome.CANCELLED and cancelled.amount_minor == 900
        assert gateway_call(url, "capture", "c2", other, 900).outcome is Outcome.DECLINED
        assert gateway_call(url, "capture", "c3", "pay_nothing", 900).outcome is Outcome.DECLINED


def test_idempotency_same_key_one_charge_and_a_different_request_refused() -> None:
    with running_acquirer() as acquirer:
        first = gateway_call(acquirer.url, "authorize", "same-key", 1000, "EUR", APPROVE)
        again = gateway_call(acquirer.url, "authorize", "same-key", 1000, "EUR", APPROVE)
        assert first == again
        assert acquirer.executions("same-key") == 1
        assert len(acquirer.state()["payments"]) == 1
        with pytest.raises(GatewayTimeout, match="in use"):  # the key's call may be out still: unknown, not failed
            gateway_call(acquirer.url, "authorize", "same-key", 2000, "EUR", APPROVE)
        assert len(acquirer.state()["payments"]) == 1
        # a malformed request is not kept: the key may then be used properly
        response = httpx.post(f"{acquirer.url}/v1/authorizations", headers={"Idempotency-Key": "k2"},
                              json={"amount_minor": -1, "currency": "EUR", "card": APPROVE})
        assert response.status_code == 400 and "amount_minor" in response.json()["error"]["message"]
        assert acquirer.executions("k2") == 0
        missing = httpx.post(f"{acquirer.url}/v1/authorizations",
                             json={"amount_minor": 1, "currency": "EUR", "card": APPROVE})
        assert missing.status_code == 400 and "Idempotency-Key" in missing.json()["error"]["message"]


def test_a_lost_answer_times_out_and_status_then_says_what_happened() -> None:
    with running_acquirer() as acquirer:
        started = time.monotonic()
        with pytest.raises(GatewayTimeout):
            gateway_call(acquirer.url, "authorize", "lost-1", 1091, "EUR", APPROVE, timeout_s=0.5)
        assert time.monotonic() - started < 5
        assert acquirer.executions("lost-1") == 1  # the charge was made
        status = gateway_call(acquirer.url, "status", "lost-1", "authorize", "", 1091, "EUR")
        assert status is not None and status.outcome is Outcome.AUTHORIZED and status.amount_minor == 1091
        assert gateway_call(acquirer.url, "status", "never-sent", "authorize", "", 1, "EUR") is None
        for other in (("capture", "", 1091, "EUR"), ("authorize", "", 1090, "EUR"), ("authorize", "", 1091, "USD")):
            with pytest.raises(BadAnswer):  # an answer to some other call than the one asked is not believed
                gateway_call(acquirer.url, "status", "lost-1", *other)
        again = gateway_call(acquirer.url, "authorize", "lost-1", 1091, "EUR", APPROVE)  # the same key: the answer
        assert again == status and acquirer.executions("lost-1") == 1
        assert GATEWAY_SECONDS.labels("authorize", "timeout")._sum.get() > 0.4


def test_slow_answers_held_answers_and_delays() -> None:
    with running_acquirer(slow_s=0.3) as acquirer:
        started = time.monotonic()
        slow = gateway_call(acquirer.url, "authorize", "slow-1", 1092, "EUR", APPROVE)
        assert slow.outcome is Outcome.AUTHORIZED and time.monotonic() - started >= 0.3
        acquirer.hold()
        with pytest.raises(GatewayTimeout):
            gateway_call(acquirer.url, "authorize", "held-1", 500, "EUR", APPROVE, timeout_s=0.5)
        acquirer.release()
        assert gateway_call(acquirer.url, "authorize", "held-1", 500, "EUR", APPROVE).outcome is Outcome.AUTHORIZED
        assert acquirer.executions("held-1") == 1
        acquirer.delay(0.8, count=1)
        with pytest.raises(GatewayTimeout):
            gateway_call(acquirer.url, "authorize", "late-1", 600, "EUR", APPROVE, timeout_s=0.3)
        assert gateway_call(acquirer.url, "authorize", "late-2", 600, "EUR", APPROVE).outcome is Outcome.AUTHORIZED


def test_a_provider_that_cannot_be_reached_is_unavailable() -> None:
    with running_acquirer() as acquirer:
        url = acquirer.url
    with pytest.raises(GatewayUnavailable):
        gateway_call(url, "authorize", "k", 100, "EUR", APPROVE)


@contextmanager
def lying_provider() -> Iterator[tuple[str, list[tuple[int, bytes]]]]:
    """A provider on a real socket that answers each request with the next (status, body) the test queued."""
    answers: list[tuple[int, bytes]] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

        def _answer(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            status, body = answers.pop(0)
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = _answer

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", answers
    finally:
        server.shutdown()
        server.server_close()


AUTHORIZED = {"id": "pay_1", "status": "authorized", "amount_minor": 100, "authorized_minor": 100, "currency": "EUR"}


@pytest.mark.parametrize(("call", "status", "body"), [
    (("authorize", "k", 100, "EUR", APPROVE), 200, b""),
    (("authorize", "k", 100, "EUR", APPROVE), 200, b"[]"),
    (("authorize", "k", 100, "EUR", APPROVE), 200, json.dumps({**AUTHORIZED, "authorized_minor": 101}).encode()),
    (("authorize", "k", 100, "EUR", APPROVE), 200, json.dumps({**AUTHORIZED, "authorized_minor": 0}).encode()),
    (("authorize", "k", 100, "EUR", APPROVE), 200, json.dumps({**AUTHORIZED, "currency": "USD"}).encode()),
    (("authorize", "k", 100, "EUR", APPROVE), 200, json.dumps({**AUTHORIZED, "status": "refunded"}).encode()),
    (("authorize", "k", 100, "EUR", APPROVE), 200, json.dumps({**AUTHORIZED, "id": "../admin"}).encode()),
    (("authorize", "k", 100, "EUR", APPROVE), 200, json.dumps({**AUTHORIZED, "auth_code": "12\u202e34"}).encode()),
    (("authorize", "k", 100, "EUR", APPROVE), 418, b'{"error": {"message": "teapot"}}'),
    (("authorize", "k", 100, "EUR", APPROVE), 402, b'{"no": "error"}'),
    (("capture", "k", "pay_1", 100), 200, json.dumps({**AUTHORIZED, "captured_minor": 100}).encode()),
    (("capture", "k", "pay_1", 100), 200,
     json.dumps({**AUTHORIZED, "id": "pay_2", "status": "captured", "captured_minor": 100}).encode()),
    (("capture", "k", "pay_1", 100), 200, json.dumps({**AUTHORIZED, "status": "captured", "captured_minor": 99}).encode()),
    (("refund", "k", "pay_1", 50), 200,
     b'{"id": "re_1", "status": "refunded", "payment": "pay_2", "amount_minor": 50, "currency": "EUR"}'),
    (("refund", "k", "pay_1", 50), 200,
     b'{"id": "re_1", "status": "refunded", "payment": "pay_1", "amount_minor": -50, "currency": "EUR"}'),
    (("status", "k", "authorize", "", 100, "EUR"), 200, b'{"call": "authorize", "status": 200, "answer": []}'),
    (("status", "k", "authorize", "", 100, "EUR"), 200, b'{"call": "launder", "status": 200, "answer": {}}'),
    (("status", "k", "capture", "pay_1", 100, "EUR"), 200,  # another payment's capture under the key
     json.dumps({"call": "capture", "status": 200, "answer": {**AUTHORIZED, "id": "pay_2", "status": "captured",
                                                             "captured_minor": 100}}).encode()),
    (("status", "k", "refund", "pay_1", 50, "EUR"), 200,  # another amount than the refund asked
     b'{"call": "refund", "status": 200, "answer": {"id": "re_1", "status": "refunded", "payment": "pay_1",'
     b' "amount_minor": 60, "currency": "EUR"}}'),
    (("settlement", datetime(2026, 1, 2).date()), 200, b'{"day": "2026-01-01", "lines": []}'),
    (("settlement", datetime(2026, 1, 2).date()), 200,
     b'{"day": "2026-01-02", "lines": [{"provider_ref": "p", "kind": "gift", "amount_minor": 1, "currency": "EUR",'
     b' "state": "settled"}]}'),
    (("qr_checkout", "k", 100, "EUR", ""), 200,
     b'{"id": "qr_1", "pay_url": "javascript:alert(1)", "expires_at": "2030-01-01T00:00:00+00:00",'
     b' "amount_minor": 100, "currency": "EUR"}'),
    (("qr_checkout", "k", 100, "EUR", ""), 200,
     b'{"id": "qr_1", "pay_url": "https://pay", "expires_at": "2030-01-01T00:00:00", "amount_minor": 100,'
     b' "currency": "EUR"}'),
])
def test_answers_the_hub_cannot_believe(call: tuple[Any, ...], status: int, body: bytes) -> None:
    with lying_provider() as (url, answers):
        answers.append((status, body))
        with pytest.raises(BadAnswer):
            gateway_call(url, *call)


def test_a_provider_failing_or_busy() -> None:
    with lying_provider() as (url, answers):
        answers.extend([(503, b""), (500, b'{"error": {}}'), (429, b"")])
        with pytest.raises(GatewayTimeout) as unknown:
            gateway_call(url, "capture", "k", "pay_x", 100)
        assert not isinstance(unknown.value, BadAnswer)
        with pytest.raises(GatewayTimeout):
            gateway_call(url, "refund", "k", "pay_x", 100)
        with pytest.raises(GatewayUnavailable):
            gateway_call(url, "refund", "k", "pay_x", 100)


def test_settlement_report_and_drift() -> None:
    with running_acquirer() as acquirer:
        url = acquirer.url
        good = gateway_call(url, "authorize", "a1", 1000, "EUR", APPROVE, capture=True).provider_ref
        failing = gateway_call(url, "authorize", "a2", 2000, "EUR", SETTLEMENT_FAILS, capture=True).provider_ref
        refund = gateway_call(url, "refund", "r1", good, 300)
        gateway_call(url, "authorize", "a3", 4000, "EUR", APPROVE)  # authorized only: not settled
        today = datetime.now(UTC).date()

        async def report() -> list[tuple[str, str, int, str, str]]:
            gateway = HttpGateway(url, "simulator", 5)
            lines = await gateway.settlement(today)
            await gateway.aclose()
            return sorted((line.provider_ref, line.kind, line.amount_minor, line.state, line.refund_ref)
                          for line in lines)

        assert run(report()) == sorted([(good, "capture", 1000, "settled", ""), (failing, "capture", 2000, "failed", ""),
                                        (good, "refund", 300, "settled", refund.provider_ref)])
        acquirer.drift("drop", provider_ref=failing)
        acquirer.drift("amount", provider_ref=good, amount_minor=999)
        acquirer.drift("extra", provider_ref="pay_stranger", amount_minor=77)
        acquirer.drift("state", provider_ref=good, state="failed")
        drifted = run(report())
        assert (good, "capture", 999, "failed", "") in drifted
        assert ("pay_stranger", "capture", 77, "settled", "") in drifted
        assert all(line[0] != failing for line in drifted)
        assert httpx.get(f"{url}/v1/settlements/2026-02-30").status_code == 400


def test_qr_pay_page_sends_a_signed_webhook_to_a_real_socket() -> None:
    with receiving_webhooks() as hub, running_acquirer(webhook_url=hub.url) as acquirer:
        checkout = gateway_call(acquirer.url, "qr_checkout", "qr-1", 1234, "EUR", "Order 17")
        assert checkout.pay_url == f"{acquirer.url}/pay/{checkout.provider_ref}"
        assert checkout.expires_at > datetime.now(UTC)
        page = httpx.get(checkout.pay_url)
        assert page.status_code == 200 and "12.34 EUR" in page.text and 'id="pay"' in page.text
        assert "Paid" in acquirer.pay(checkout.provider_ref)
        [received] = hub.wait_for(1)
        event = received.json()
        assert event["type"] == "payment.succeeded"
        assert event["data"] == {"provider_ref": checkout.provider_ref, "amount_minor": 1234, "currency": "EUR"}
        timestamp, _, signature = received.headers["NovaPOS-Signature"].partition(",v1=")
        created = int(timestamp.removeprefix("t="))
        assert created == event["created"] and abs(created - time.time()) < 10
        expected = hmac.new(TEST_SECRET.encode(), f"{created}.".encode() + received.body, hashlib.sha256).hexdigest()
        assert hmac.compare_digest(signature, expected)
        assert "succeeded" in acquirer.pay(checkout.provider_ref)  # a second press: no second webhook
        # the QR payment is captured: refundable and in the settlement
        assert gateway_call(acquirer.url, "refund", "qr-r", checkout.provider_ref, 234).outcome is Outcome.REFUNDED
        # a replay sends the same bytes and signature again
        assert acquirer.replay(event["id"]) == 200
        replayed = hub.wait_for(2)[1]
        assert (replayed.body, replayed.headers["NovaPOS-Signature"]) == (received.body,
                                                                           received.headers["NovaPOS-Signature"])
        other = gateway_call(acquirer.url, "qr_checkout", "qr-2", 500, "EUR", "")
        acquirer.decline(other.provider_ref)
        assert hub.wait_for(3)[2].json()["type"] == "payment.failed"
        late = gateway_call(acquirer.url, "qr_checkout", "qr-3", 500, "EUR", "")
        acquirer.expire(late.provider_ref)
        assert "expired" in acquirer.pay(late.provider_ref)
        assert len(hub.received) == 3


def test_rotation_signs_with_the_new_secret_and_keeps_the_old_listed(tmp_path: Path) -> None:
    secrets_file = tmp_path / "webhook-secrets"
    with receiving_webhooks() as hub, running_acquirer(webhook_url=hub.url, secrets_file=secrets_file) as acquirer:
        rotated = acquirer.rotate("whsec_new")
        assert rotated == ["whsec_new", TEST_SECRET] == read_secrets(secrets_file)
        assert secrets_file.stat().st_mode & 0o777 == 0o600
        checkout = gateway_call(acquirer.url, "qr_checkout", "qr-1", 100, "EUR", "")
        acquirer.pay(checkout.provider_ref)
        [received] = hub.wait_for(1)
        timestamp, _, signature = received.headers["NovaPOS-Signature"].partition(",v1=")
        body = f"{timestamp.removeprefix('t=')}.".encode() + received.body
        assert signature == hmac.new(b"whsec_new", body, hashlib.sha256).hexdigest()
        # a hub that refuses gets the webhook again (three attempts in all)
        hub.status = 500
        other = gateway_call(acquirer.url, "qr_checkout", "qr-2", 100, "EUR", "")
        acquirer.pay(other.provider_ref)
        event = json.loads(hub.wait_for(4)[3].body)
        assert acquirer.state()["webhooks"][event["id"]]["deliveries"] == [500, 500, 500]


def test_terminal_authorizations_are_captured_like_any_other() -> None:
    with running_acquirer() as acquirer:
        acquirer.report_terminal_approval("T-0001.1", 2500)
        captured = gateway_call(acquirer.url, "capture", "cap-t", "T-0001.1", 2500)
        assert captured.outcome is Outcome.CAPTURED and captured.provider_ref == "T-0001.1"
        # a card the terminal stored offline is authorized later by its token
        later = gateway_call(acquirer.url, "authorize", "off-1", 800, "EUR", f"tok_{APPROVE}")
        assert later.outcome is Outcome.AUTHORIZED
        assert gateway_call(acquirer.url, "authorize", "off-2", 800, "EUR", f"tok_{DECLINE}").outcome is Outcome.DECLINED


def test_the_mock_terminal_reports_its_approvals_so_the_hub_can_capture_them(tmp_path: Path) -> None:
    with running_acquirer() as acquirer, PaymentTerminalMock(
            tmp_path / "terminal", processing_time=0.05, report_approval=terminal_reporter(acquirer.url)) as mock, \
            SerialPaymentTerminal(str(mock.path), response_timeout=2.0) as terminal:
        terminal.start_payment(1250, "EUR", "sale-1")
        mock.present_card(scheme="MASTERCARD")
        deadline = time.monotonic() + 5
        while not (status := terminal.status("sale-1")).final and time.monotonic() < deadline:
            time.sleep(0.01)
        assert status.stage == "approved"
        payment = acquirer.payment("sale-1")
        assert (payment["status"], payment["authorized_minor"], payment["auth_code"], payment["source"]) == (
            "authorized", 1250, status.auth_code, "terminal")
        terminal.start_payment(700, "EUR", "sale-2")
        mock.present_card(approve=False)
        while not terminal.status("sale-2").final:
            time.sleep(0.01)
        assert "sale-2" not in acquirer.state()["payments"]  # a decline is not an authorization
        captured = gateway_call(acquirer.url, "capture", "cap-1", "sale-1", 1250)
        assert (captured.outcome, captured.amount_minor) == (Outcome.CAPTURED, 1250)


def test_a_call_lost_on_the_way_was_never_made_and_may_be_made_again() -> None:
    with running_acquirer() as acquirer:
        acquirer.drop()
        with pytest.raises(GatewayTimeout):
            gateway_call(acquirer.url, "authorize", "drop-1", 1000, "EUR", APPROVE)
        assert gateway_call(acquirer.url, "status", "drop-1", "authorize", "", 1000, "EUR") is None
        assert gateway_call(acquirer.url, "authorize", "drop-1", 1000, "EUR", APPROVE).outcome is Outcome.AUTHORIZED
        acquirer.drop(mode="503")
        with pytest.raises(GatewayTimeout):
            gateway_call(acquirer.url, "authorize", "drop-2", 1000, "EUR", APPROVE)
        assert gateway_call(acquirer.url, "status", "drop-2", "authorize", "", 1000, "EUR") is None
        assert acquirer.executions("drop-1") == 1 and acquirer.executions("drop-2") == 0
        assert len(acquirer.state()["payments"]) == 1


@pytest.mark.parametrize("body", [
    b"not json", b"[1, 2]", b'{"amount_minor": "12", "currency": "EUR", "card": "4242424242424242"}',
    b'{"amount_minor": 1e3, "currency": "EUR", "card": "4242424242424242"}',
    b'{"amount_minor": 100, "currency": "eur", "card": "4242424242424242"}',
    b'{"amount_minor": 100, "currency": "EUR", "card": "4242\\u0000"}',
    b'{"amount_minor": 100, "currency": "EUR", "card": "4242424242424242", "capture": "yes"}',
    b'{"amount_minor": 10000000000000, "currency": "EUR", "card": "4242424242424242"}',
])
def test_the_simulator_refuses_malformed_calls_and_changes_nothing(body: bytes) -> None:
    with running_acquirer() as acquirer:
        response = httpx.post(f"{acquirer.url}/v1/authorizations", content=body,
                              headers={"Idempotency-Key": "k", "Content-Type": "application/json"})
        assert response.status_code == 400 and response.json()["error"]["message"]
        assert acquirer.state()["payments"] == {} and acquirer.executions("k") == 0
        huge = httpx.post(f"{acquirer.url}/v1/refunds", content=b"x" * 70_000, headers={"Idempotency-Key": "k"})
        assert huge.status_code == 413
        assert httpx.post(f"{acquirer.url}/control/delay", json={"seconds": "soon"}).status_code == 400
        assert httpx.get(f"{acquirer.url}/v1/nothing").status_code == 404
        assert httpx.get(f"{acquirer.url}/pay/%3Cscript%3E").status_code == 404


def test_the_demo_webhook_secret_is_made_once_and_kept_private(tmp_path: Path) -> None:
    with demo_acquirer(tmp_path, 0, "http://127.0.0.1:8700") as server:
        settings = hub_settings(server)
        secrets_file = Path(settings["webhook_secrets_file"])
        assert secrets_file.stat().st_mode & 0o777 == 0o600
        assert settings["gateway_url"] == server.url and httpx.get(f"{server.url}/").status_code == 200
        assert server.acquirer.webhook_url == "http://127.0.0.1:8700/api/payments/webhooks/demo/simulator"
    assert webhook_secrets(secrets_file) == read_secrets(secrets_file) == server.acquirer.secrets


def test_a_qr_checkout_nobody_paid_is_cancelled_and_a_paid_one_is_not() -> None:
    with receiving_webhooks() as hub, running_acquirer(webhook_url=hub.url) as acquirer:
        unpaid = gateway_call(acquirer.url, "qr_checkout", "qr-1", 500, "EUR", "")
        cancelled = gateway_call(acquirer.url, "cancel", "qr-1-cancel", unpaid.provider_ref)
        assert (cancelled.outcome, cancelled.amount_minor) == (Outcome.CANCELLED, 0)
        assert "cancelled" in acquirer.pay(unpaid.provider_ref) and hub.received == []
        paid = gateway_call(acquirer.url, "qr_checkout", "qr-2", 500, "EUR", "")
        acquirer.pay(paid.provider_ref)
        assert gateway_call(acquirer.url, "cancel", "qr-2-cancel", paid.provider_ref).outcome is Outcome.DECLINED
