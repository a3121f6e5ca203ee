"""A simulated card acquirer and QR wallet: the payment provider the hub talks to in the demo and the tests.

It is an HTTP server on a real socket with a small Stripe-like JSON API, so hub.payments.acquirer's
HttpGateway is tested over the same wire it uses against a real provider. Every mutating call carries an
`Idempotency-Key`: the same key is answered with the first answer and never charges twice; a key reused for a
different request is refused (409). `GET /v1/calls/{key}` says how the call made with a key ended (404: never
seen), which is how the hub resolves a call whose answer it never got.

Behaviour is scripted like Stripe's test mode. By card (a number or a token the simulator knows):
4242424242424242 approves, 4000000000000002 declines, 4000000000009995 approves half the amount,
4000000000000341 approves and captures but the settlement report says the capture failed. By amount (minor
units): ending in 91, the call is made but its answer never comes (the client times out); ending in 92, the
answer comes after `slow_s`. QR checkouts have a pay page (`/pay/{ref}`, what the customer's phone opens) whose
Pay and Decline buttons end the payment and post a signed webhook to the hub:
`NovaPOS-Signature: t=<unix>,v1=<hex hmac-sha256(secret, f"{t}.{raw body}")>` with the newest secret.
The mock payment terminal reports its approvals (`POST /v1/terminal_authorizations`), so a terminal's
authorization can be captured, voided and refunded here like any other.

`/control/...` is for tests and the person running the demo: counts of executions per key, delays, holding
answers, settlement drift, secret rotation, webhook replay. Everything lives in memory under one lock; each
call is logged on one line.

Run it alone with `python -m mocks.acquirer --port N --webhook-url URL --secrets-file F`.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import html
import itertools
import json
import logging
import re
import secrets as secrets_module
import ssl
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from mocks.payment_terminal import Approval

log = logging.getLogger("mocks.acquirer")

APPROVE = "4242424242424242"
DECLINE = "4000000000000002"
PARTIAL = "4000000000009995"
SETTLEMENT_FAILS = "4000000000000341"
TEST_TOKENS = {
    "tok_visa": APPROVE,
    "tok_mastercard": "5555555555554444",
    "tok_amex": "378282246310005",
    "tok_chargeDeclined": DECLINE,
    "tok_partial": PARTIAL,
    "tok_settlementFails": SETTLEMENT_FAILS,
}
"""Stripe-style test tokens; `tok_<card number>` (what the mock terminal stores offline) is known too."""
LOST_ANSWER = 91
"""An amount whose last two digits are this is charged, but its answer never comes."""
SLOW_ANSWER = 92
"""An amount whose last two digits are this is answered after `slow_s`."""
MAX_BODY = 64 * 1024
MAX_MINOR = 10**12
_KEY = re.compile(r"[\x21-\x7e]{1,255}")
_REF = re.compile(r"[A-Za-z0-9._-]{1,64}")
_CARD_NUMBER = re.compile(r"[0-9]{12,19}")
_CURRENCY = re.compile(r"[A-Z]{3}")
_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


class _Refusal(Exception):
    """An answer other than 200: its HTTP status and Stripe-like error body. `kept`: the answer belongs to
    the idempotency key (a decline or a refusal about the payment's state), unlike a malformed request."""

    def __init__(self, status: int, code: str, message: str, *, kept: bool = True, **extra: Any) -> None:
        super().__init__(message)
        self.status, self.kept = status, kept
        kind = "card_error" if status == 402 else "invalid_request_error"
        self.body = {"error": {"type": kind, "code": code, "message": message, **extra}}


@dataclass
class Payment:
    ref: str
    amount_minor: int
    currency: str
    card: str
    """The card number (tokens are resolved when the payment is made)."""
    status: str
    """authorized, captured, cancelled, refunded or declined."""
    authorized_minor: int = 0
    captured_minor: int = 0
    refunded_minor: int = 0
    auth_code: str = ""
    captured_on: date | None = None
    source: str = "api"
    """api, terminal or qr."""


@dataclass
class Refund:
    ref: str
    payment_ref: str
    amount_minor: int
    currency: str
    day: date


@dataclass
class QrCheckout:
    ref: str
    amount_minor: int
    currency: str
    description: str
    expires_at: datetime
    status: str = "pending"
    """pending, succeeded, failed, expired or cancelled (by the hub, once expired unpaid)."""


@dataclass
class Call:
    """One idempotent call: what was asked (its fingerprint) and how it was answered."""
    call: str
    fingerprint: str
    status: int = 0
    answer: dict[str, Any] = field(default_factory=dict)
    executions: int = 0
    """How many times the operation ran for this key (1 in a correct world: a repeat is answered, not redone)."""


@dataclass
class Webhook:
    id: str
    body: bytes
    signature: str
    deliveries: list[int | str] = field(default_factory=list)
    """Each attempt's HTTP status, or the error text when nothing answered."""


@dataclass
class Drift:
    """A change made to a day's settlement report so that reconciliation has something to find."""
    change: str
    """drop, extra, amount or state."""
    provider_ref: str = ""
    amount_minor: int = 0
    state: str = "failed"


class Acquirer:
    """The simulator's state and rules, apart from HTTP (the handler below is its only caller)."""

    def __init__(self, secrets: list[str], *, secrets_file: Path | None = None, webhook_url: str = "",
                 webhook_ca: Path | None = None, slow_s: float = 2.0, lost_answer_s: float = 60.0,
                 qr_ttl_s: int = 900) -> None:
        if not secrets:
            raise ValueError("the acquirer needs at least one webhook signing secret")
        self.lock = threading.Lock()
        self.secrets = list(secrets)
        self.secrets_file = secrets_file
        self.webhook_url = webhook_url
        self.webhook_tls = ssl.create_default_context(cafile=webhook_ca) if webhook_ca else None
        """How an https:// webhook URL's certificate is checked: against `webhook_ca` (the demo's local CA)."""
        self.slow_s = slow_s
        self.lost_answer_s = lost_answer_s
        self.qr_ttl_s = qr_ttl_s
        self.base_url = ""
        self.calls: dict[str, Call] = {}
        self.payments: dict[str, Payment] = {}
        self.refunds: list[Refund] = []
        self.checkouts: dict[str, QrCheckout] = {}
        self.webhooks: dict[str, Webhook] = {}
        self.drift: dict[date, list[Drift]] = {}
        self.delay_s = 0.0
        self.delay_count: int | None = None
        self.hold_count = 0
        self.drop_count = 0
        self.drop_mode = "close"
        self.released = threading.Event()
        self.stopping = threading.Event()
        self._auth_codes = itertools.count(200001)

    # -- the API's operations (called with the lock held) ---------------------------------------------

    def authorize(self, amount: int, currency: str, card: str, capture: bool) -> dict[str, Any]:
        number = self._card_number(card)
        ref = _new_ref("pay")
        if number == DECLINE:
            self.payments[ref] = Payment(ref, amount, currency, number, "declined")
            raise _Refusal(402, "card_declined", "Your card was declined.", provider_ref=ref, decline_code="generic_decline")
        held = amount // 2 if number == PARTIAL else amount
        payment = Payment(ref, amount, currency, number, "authorized", authorized_minor=held,
                          auth_code=str(next(self._auth_codes)))
        self.payments[ref] = payment
        if capture:
            self._capture(payment, held)
        return _payment_json(payment)

    def terminal_authorization(self, reference: str, amount: int, currency: str, card: str,
                               auth_code: str) -> dict[str, Any]:
        if reference in self.payments:
            raise _Refusal(409, "reference_in_use", f"a payment {reference} already exists")
        number = self._card_number(card)
        payment = Payment(reference, amount, currency, number, "authorized", authorized_minor=amount,
                          auth_code=auth_code or str(next(self._auth_codes)), source="terminal")
        self.payments[reference] = payment
        return _payment_json(payment)

    def capture(self, ref: str, amount: int | None) -> dict[str, Any]:
        payment = self._payment(ref)
        if payment.status != "authorized":
            raise _Refusal(402, "payment_unexpected_state", f"this payment is {payment.status}: it cannot be captured",
                           provider_ref=ref)
        amount = payment.authorized_minor if amount is None else amount
        if amount > payment.authorized_minor:
            raise _Refusal(402, "amount_too_large",
                           f"{amount} is more than the {payment.authorized_minor} authorized", provider_ref=ref)
        self._capture(payment, amount)
        return _payment_json(payment)

    def _capture(self, payment: Payment, amount: int) -> None:
        payment.status, payment.captured_minor, payment.captured_on = "captured", amount, _today()

    def cancel(self, ref: str) -> dict[str, Any]:
        checkout = self.checkouts.get(ref)
        if checkout is not None and ref not in self.payments:  # a QR code nobody paid: its page takes no more money
            self._expire(checkout)
            if checkout.status not in ("pending", "expired"):
                raise _Refusal(402, "payment_unexpected_state", f"this QR payment is {checkout.status}: it cannot "
                                                                "be cancelled", provider_ref=ref)
            checkout.status = "cancelled"
            return {**_checkout_json(checkout, self.base_url), "authorized_minor": 0}
        payment = self._payment(ref)
        if payment.status != "authorized":
            raise _Refusal(402, "payment_unexpected_state", f"this payment is {payment.status}: it cannot be cancelled",
                           provider_ref=ref)
        payment.status = "cancelled"
        return _payment_json(payment)

    def refund(self, ref: str, amount: int) -> dict[str, Any]:
        payment = self._payment(ref)
        left = payment.captured_minor - payment.refunded_minor
        if payment.status not in ("captured", "refunded") or left == 0:
            raise _Refusal(402, "payment_unexpected_state", f"this payment is {payment.status}: nothing to refund",
                           provider_ref=ref)
        if amount > left:
            raise _Refusal(402, "amount_too_large", f"{amount} is more than the {left} left to refund", provider_ref=ref)
        payment.refunded_minor += amount
        if payment.refunded_minor == payment.captured_minor:
            payment.status = "refunded"
        refund = Refund(_new_ref("re"), ref, amount, payment.currency, _today())
        self.refunds.append(refund)
        return {"id": refund.ref, "object": "refund", "status": "refunded", "payment": ref,
                "amount_minor": amount, "currency": payment.currency}

    def qr_checkout(self, amount: int, currency: str, description: str) -> dict[str, Any]:
        ref = _new_ref("qr")
        expires = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=self.qr_ttl_s)
        checkout = QrCheckout(ref, amount, currency, description, expires)
        self.checkouts[ref] = checkout
        return _checkout_json(checkout, self.base_url)

    def settlement(self, day: date) -> dict[str, Any]:
        lines: list[dict[str, Any]] = []
        for payment in self.payments.values():
            if payment.captured_on == day:
                state = "failed" if payment.card == SETTLEMENT_FAILS else "settled"
                lines.append({"provider_ref": payment.ref, "kind": "capture", "amount_minor": payment.captured_minor,
                              "currency": payment.currency, "state": state, "refund_ref": ""})
        for refund in self.refunds:
            if refund.day == day:
                lines.append({"provider_ref": refund.payment_ref, "kind": "refund", "amount_minor": refund.amount_minor,
                              "currency": refund.currency, "state": "settled", "refund_ref": refund.ref})
        for drift in self.drift.get(day, []):
            lines = _drifted(lines, drift)
        return {"object": "settlement", "day": day.isoformat(), "lines": lines}

    def customer_pays(self, ref: str, paid: bool) -> tuple[str, Webhook | None]:
        """The customer's phone pressed Pay or Decline: what the page says, and the webhook to send (None
        when the checkout had already ended)."""
        checkout = self.checkouts.get(ref)
        if checkout is None:
            raise _Refusal(404, "resource_missing", "no such payment")
        self._expire(checkout)
        if checkout.status != "pending":
            return f"This payment is {checkout.status}.", None
        checkout.status = "succeeded" if paid else "failed"
        if paid:
            payment = Payment(ref, checkout.amount_minor, checkout.currency, "", "authorized",
                              authorized_minor=checkout.amount_minor, auth_code=str(next(self._auth_codes)),
                              source="qr")
            self._capture(payment, checkout.amount_minor)
            self.payments[ref] = payment
        kind = "payment.succeeded" if paid else "payment.failed"
        webhook = self.new_webhook(kind, {"provider_ref": ref, "amount_minor": checkout.amount_minor,
                                          "currency": checkout.currency})
        return ("Paid. You may close this page." if paid else "Payment declined."), webhook

    def new_webhook(self, kind: str, data: dict[str, Any]) -> Webhook:
        created = int(time.time())
        event_id = _new_ref("evt")
        body = json.dumps({"id": event_id, "type": kind, "created": created, "data": data},
                          separators=(",", ":")).encode()
        webhook = Webhook(event_id, body, sign(self.secrets[0], created, body))
        self.webhooks[event_id] = webhook
        return webhook

    def rotate(self, secret: str | None, keep_previous: bool) -> list[str]:
        """A new signing secret, newest first; the previous one stays listed (the overlap) unless told not."""
        new = secret or "whsec_" + secrets_module.token_hex(24)
        self.secrets = [new, *self.secrets[:1]] if keep_previous else [new]
        if self.secrets_file is not None:
            write_secrets(self.secrets_file, self.secrets)
        return list(self.secrets)

    def _expire(self, checkout: QrCheckout) -> None:
        if checkout.status == "pending" and datetime.now(UTC) >= checkout.expires_at:
            checkout.status = "expired"

    def _payment(self, ref: str) -> Payment:
        payment = self.payments.get(ref)
        if payment is None:
            raise _Refusal(404, "resource_missing", f"no payment {ref}", provider_ref=ref)
        return payment

    def _card_number(self, card: str) -> str:
        if _CARD_NUMBER.fullmatch(card):
            return card
        number = TEST_TOKENS.get(card)
        if number is None and card.startswith("tok_") and _CARD_NUMBER.fullmatch(card[4:]):
            number = card[4:]  # what the mock terminal stores offline (mocks.payment_terminal)
        if number is None:
            raise _Refusal(402, "invalid_card", "this card token is unknown")
        return number


def sign(secret: str, created: int, body: bytes) -> str:
    """The NovaPOS-Signature header's value for `body` sent at `created` (unix seconds)."""
    digest = hmac.new(secret.encode(), f"{created}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={created},v1={digest}"


def write_secrets(path: Path, secrets: list[str]) -> None:
    """The secrets file the hub reads (one a line, newest first), readable by its owner only, replaced whole."""
    temporary = path.with_name(path.name + ".tmp")
    temporary.touch(mode=0o600)
    temporary.chmod(0o600)
    temporary.write_text("".join(secret + "\n" for secret in secrets))
    temporary.replace(path)


def read_secrets(path: Path) -> list[str]:
    """The secrets in a secrets file, newest first (blank lines and # comments skipped)."""
    return [line.strip() for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]


def _drifted(lines: list[dict[str, Any]], drift: Drift) -> list[dict[str, Any]]:
    """The report's lines with one drift applied: to the line of drift.provider_ref (the first line when none
    is named; nothing when the named one is absent), or an extra line."""
    index = next((i for i, line in enumerate(lines) if line["provider_ref"] == drift.provider_ref), None)
    if drift.change == "extra":
        extra = {"provider_ref": drift.provider_ref or _new_ref("pay"), "kind": "capture",
                 "amount_minor": drift.amount_minor or 1234, "currency": lines[0]["currency"] if lines else "EUR",
                 "state": "settled", "refund_ref": ""}
        return [*lines, extra]
    if index is None:
        index = 0 if lines and not drift.provider_ref else None
    if index is None:
        return lines
    if drift.change == "drop":
        return lines[:index] + lines[index + 1:]
    changed = dict(lines[index])
    if drift.change == "amount":
        changed["amount_minor"] = drift.amount_minor or changed["amount_minor"] + 1
    else:
        changed["state"] = drift.state
    return [*lines[:index], changed, *lines[index + 1:]]


def _payment_json(payment: Payment) -> dict[str, Any]:
    return {"id": payment.ref, "object": "authorization", "status": payment.status,
            "amount_minor": payment.amount_minor, "authorized_minor": payment.authorized_minor,
            "captured_minor": payment.captured_minor, "refunded_minor": payment.refunded_minor,
            "currency": payment.currency, "auth_code": payment.auth_code, "source": payment.source}


def _checkout_json(checkout: QrCheckout, base_url: str) -> dict[str, Any]:
    return {"id": checkout.ref, "object": "qr_checkout", "status": checkout.status,
            "amount_minor": checkout.amount_minor, "currency": checkout.currency,
            "pay_url": f"{base_url}/pay/{checkout.ref}", "expires_at": checkout.expires_at.isoformat()}


def _new_ref(prefix: str) -> str:
    return f"{prefix}_{secrets_module.token_hex(10)}"


def _today() -> date:
    return datetime.now(UTC).date()


# -- HTTP ---------------------------------------------------------------------------------------------

_MUTATING = re.compile(r"/v1/(authorizations|authorizations/([A-Za-z0-9._-]{1,64})/(capture|cancel)|refunds|"
                       r"qr_checkouts|terminal_authorizations)")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128
    """Connections waiting to be accepted: the default 5 resets a client's pool opening 32 at once."""


class AcquirerServer:
    """The simulator on 127.0.0.1:`port` (0: a free port), served from a daemon thread."""

    def __init__(self, acquirer: Acquirer, host: str = "127.0.0.1", port: int = 0) -> None:
        self.acquirer = acquirer
        self._server = _Server((host, port), _handler(acquirer))
        self.url = f"http://{host}:{self._server.server_address[1]}"
        acquirer.base_url = self.url
        self._thread = threading.Thread(target=self._server.serve_forever, name="acquirer", daemon=True)

    def start(self) -> AcquirerServer:
        self._thread.start()
        return self

    def __enter__(self) -> AcquirerServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        self.acquirer.stopping.set()
        self.acquirer.released.set()
        self._server.shutdown()
        self._server.server_close()


def _handler(acquirer: Acquirer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body leave as separate writes: no 40 ms delayed-ACK stall

        def log_message(self, format: str, *args: Any) -> None:
            pass  # each call is logged on one line by _json and _html

        def do_GET(self) -> None:
            self._serve("GET")

        def do_POST(self) -> None:
            self._serve("POST")

        def _serve(self, method: str) -> None:
            path = urlsplit(self.path).path
            key = self.headers.get("Idempotency-Key", "")
            try:
                body = self._body() if method == "POST" else {}
                if method == "GET" and path == "/":
                    self._index()
                    return
                if method == "GET" and path.startswith("/pay/"):
                    self._page(path.removeprefix("/pay/"))
                    return
                if method == "POST" and path.startswith("/pay/"):
                    self._customer(path.removeprefix("/pay/"))
                    return
                if path.startswith("/control/"):
                    self._json(method, path, key, 200, _control(acquirer, method, path.removeprefix("/control/"), body))
                    return
                if method == "POST" and _MUTATING.fullmatch(path):
                    self._call(path, key, body)
                    return
                if method == "GET":
                    self._json(method, path, key, 200, _read(acquirer, path))
                    return
                raise _Refusal(404, "resource_missing", "no such endpoint", kept=False)
            except _Refusal as refusal:
                self._json(method, path, key, refusal.status, refusal.body)
            except (ValueError, TypeError, KeyError) as error:  # a control's malformed value
                self._json(method, path, key, 400, {"error": {"type": "invalid_request_error",
                                                              "code": "parameter_invalid", "message": repr(error)[:200]}})

        def _body(self) -> dict[str, Any]:
            length = self.headers.get("Content-Length", "0")
            if not length.isdigit() or int(length) > MAX_BODY:
                self.close_connection = True
                raise _Refusal(413, "body_too_large", f"a body must be at most {MAX_BODY} bytes", kept=False)
            raw = self.rfile.read(int(length))
            if not raw:
                return {}
            if self.headers.get("Content-Type", "").startswith("application/x-www-form-urlencoded"):
                return {}  # the pay page's buttons: the path says everything
            try:
                body = json.loads(raw)
            except ValueError:
                raise _Refusal(400, "invalid_json", "the body is not JSON", kept=False) from None
            if not isinstance(body, dict):
                raise _Refusal(400, "invalid_json", "the body must be a JSON object", kept=False)
            return body

        def _call(self, path: str, key: str, body: dict[str, Any]) -> None:
            if not _KEY.fullmatch(key):
                raise _Refusal(400, "idempotency_key_missing",
                               "every mutating call needs an Idempotency-Key of 1 to 255 printable characters",
                               kept=False)
            name, run, amount = _operation(acquirer, path, body)
            fingerprint = json.dumps([path, body], sort_keys=True)
            with acquirer.lock:
                dropped = acquirer.drop_count > 0
                if dropped:
                    acquirer.drop_count -= 1
                else:
                    known, executed = self._execute(key, name, fingerprint, run)
                    status, answer = known.status, known.answer
                    held = acquirer.hold_count > 0
                    if held:
                        acquirer.hold_count -= 1
                    delay = acquirer.delay_s if acquirer.delay_count != 0 else 0.0
                    if acquirer.delay_count:
                        acquirer.delay_count -= 1
            if dropped:
                self._drop(path, key)
                return
            if executed and amount % 100 == LOST_ANSWER:
                self._lose(path, key)
                return
            if amount % 100 == SLOW_ANSWER:
                delay = max(delay, acquirer.slow_s)
            if held:
                acquirer.released.wait(acquirer.lost_answer_s)
                if acquirer.stopping.is_set() or not acquirer.released.is_set():
                    self._lose(path, key)
                    return
            if delay:
                acquirer.stopping.wait(delay)
            self._json("POST", path, key, status, answer)

        def _execute(self, key: str, name: str, fingerprint: str, run: Callable[[], dict[str, Any]]
                     ) -> tuple[Call, bool]:
            """The call made with `key` (made now, or found made before: the bool says which); under the lock."""
            known = acquirer.calls.get(key)
            if known is not None:
                if known.fingerprint != fingerprint:
                    raise _Refusal(409, "idempotency_key_in_use",
                                   "this Idempotency-Key was used for a different request", kept=False)
                return known, False
            known = acquirer.calls[key] = Call(name, fingerprint, executions=1)
            try:
                known.status, known.answer = 200, run()
            except _Refusal as refusal:
                if not refusal.kept:
                    del acquirer.calls[key]
                    raise
                known.status, known.answer = refusal.status, refusal.body
            except BaseException:
                del acquirer.calls[key]
                raise
            return known, True

        def _drop(self, path: str, key: str) -> None:
            """The call never reached the provider: nothing is done or kept (status says 404), and the client
            sees its connection closed, or a 503, as the drop control asked."""
            log.info("POST %s key=%s -> dropped (%s)", path, key, acquirer.drop_mode)
            if acquirer.drop_mode == "503":
                self._json("POST", path, key, 503, {"error": {"type": "api_error", "code": "unavailable",
                                                               "message": "the service is unavailable"}})
            else:
                self.close_connection = True

        def _lose(self, path: str, key: str) -> None:
            """The call was made; its answer never comes (the connection is dropped after a long silence)."""
            log.info("POST %s key=%s -> answer lost", path, key)
            acquirer.stopping.wait(acquirer.lost_answer_s)
            self.close_connection = True

        def _page(self, ref: str) -> None:
            with acquirer.lock:
                checkout = acquirer.checkouts.get(ref)
                if checkout is not None:
                    acquirer._expire(checkout)
                    snapshot = _checkout_json(checkout, acquirer.base_url)
            if checkout is None:
                self._html(404, "<p>No such payment.</p>")
                return
            amount = f"{snapshot['amount_minor'] / 100:.2f} {html.escape(snapshot['currency'])}"
            if snapshot["status"] != "pending":
                self._html(200, f"<p>{amount}: this payment is {html.escape(snapshot['status'])}.</p>")
                return
            self._html(200, (
                f"<h1>Pay {amount}</h1><p>{html.escape(checkout.description)}</p>"
                f'<form method="post" action="/pay/{ref}/pay"><button id="pay">Pay</button></form>'
                f'<form method="post" action="/pay/{ref}/decline"><button id="decline">Decline</button></form>'))

        def _index(self) -> None:
            """The QR payments waiting for a customer, for a person running the demo without a phone at hand."""
            with acquirer.lock:
                for checkout in acquirer.checkouts.values():
                    acquirer._expire(checkout)
                waiting = [(c.ref, c.amount_minor, c.currency) for c in acquirer.checkouts.values()
                           if c.status == "pending"]
            items = "".join(f'<li><a href="/pay/{ref}">{amount / 100:.2f} {currency}</a></li>'
                            for ref, amount, currency in reversed(waiting))
            self._html(200, "<h1>Simulated acquirer</h1><p>QR payments waiting for the customer's phone:</p>"
                       f"<ul>{items or '<li>none</li>'}</ul>")

        def _customer(self, rest: str) -> None:
            ref, _, choice = rest.partition("/")
            if choice not in ("pay", "decline") or not _REF.fullmatch(ref):
                self._html(404, "<p>No such page.</p>")
                return
            try:
                with acquirer.lock:
                    message, webhook = acquirer.customer_pays(ref, choice == "pay")
            except _Refusal:
                self._html(404, "<p>No such payment.</p>")
                return
            if webhook is not None:
                deliver(acquirer, webhook)
            self._html(200, f"<p id='result'>{html.escape(message)}</p>")

        def _json(self, method: str, path: str, key: str, status: int, body: dict[str, Any]) -> None:
            log.info("%s %s key=%s -> %d %s", method, path, key or "-", status,
                     body.get("status") or body.get("error", {}).get("code", ""))
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _html(self, status: int, content: str) -> None:
            log.info("%s %s -> %d", self.command, self.path[:100], status)
            data = ("<!doctype html><meta charset=utf-8><meta name=viewport content='width=device-width'>"
                    f"<title>NovaPOS pay</title>{content}").encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Handler


def _operation(acquirer: Acquirer, path: str, body: dict[str, Any]) -> tuple[str, Any, int]:
    """(the call's name, the operation to run under the lock, the amount that scripts its answer); _Refusal
    (not kept) for a malformed request."""
    parts = path.split("/")[2:]
    if parts == ["authorizations"]:
        amount, currency = _amount(body), _currency(body)
        card, capture = _text(body, "card"), body.get("capture", False)
        if not isinstance(capture, bool):
            raise _Refusal(400, "parameter_invalid", "capture must be true or false", kept=False)
        return "authorize", lambda: acquirer.authorize(amount, currency, card, capture), amount
    if parts[0] == "authorizations" and parts[2] == "capture":
        amount_or_none = _amount(body) if "amount_minor" in body else None
        return "capture", lambda: acquirer.capture(parts[1], amount_or_none), amount_or_none or 0
    if parts[0] == "authorizations":
        return "cancel", lambda: acquirer.cancel(parts[1]), 0
    if parts == ["refunds"]:
        ref, amount = _text(body, "payment"), _amount(body)
        return "refund", lambda: acquirer.refund(ref, amount), amount
    if parts == ["qr_checkouts"]:
        amount, currency = _amount(body), _currency(body)
        description = body.get("description", "")
        if not isinstance(description, str) or len(description) > 200:
            raise _Refusal(400, "parameter_invalid", "description must be text of at most 200 characters", kept=False)
        return "qr_checkout", lambda: acquirer.qr_checkout(amount, currency, description), amount
    amount, currency = _amount(body), _currency(body)
    reference, card = _text(body, "reference"), _text(body, "card")
    auth_code = _text(body, "auth_code") if body.get("auth_code") else ""
    return ("terminal_authorization",
            lambda: acquirer.terminal_authorization(reference, amount, currency, card, auth_code), amount)


def _amount(body: dict[str, Any]) -> int:
    amount = body.get("amount_minor")
    if type(amount) is not int or not 0 < amount <= MAX_MINOR:
        raise _Refusal(400, "parameter_invalid", f"amount_minor must be a whole number from 1 to {MAX_MINOR}",
                       kept=False)
    return amount


def _currency(body: dict[str, Any]) -> str:
    currency = body.get("currency")
    if not isinstance(currency, str) or not _CURRENCY.fullmatch(currency):
        raise _Refusal(400, "parameter_invalid", "currency must be three capital letters", kept=False)
    return currency


def _text(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not _REF.fullmatch(value):
        raise _Refusal(400, "parameter_invalid", f"{name} must be 1 to 64 letters, digits, ., _ or -", kept=False)
    return value


def _read(acquirer: Acquirer, path: str) -> dict[str, Any]:
    parts = path.split("/")[2:] if path.startswith("/v1/") else []
    with acquirer.lock:
        if len(parts) == 2 and parts[0] == "calls":
            key = unquote(parts[1])
            known = acquirer.calls.get(key)
            if known is None:
                raise _Refusal(404, "resource_missing", "no call was made with this Idempotency-Key", kept=False)
            return {"object": "call", "key": key, "call": known.call, "status": known.status,
                    "answer": known.answer}
        if len(parts) == 2 and parts[0] == "settlements" and _DAY.fullmatch(parts[1]):
            try:
                day = date.fromisoformat(parts[1])
            except ValueError:
                raise _Refusal(400, "parameter_invalid", "the day must be YYYY-MM-DD", kept=False) from None
            return acquirer.settlement(day)
        if len(parts) == 2 and parts[0] == "authorizations":
            return _payment_json(acquirer._payment(parts[1]))
        if len(parts) == 2 and parts[0] == "qr_checkouts" and parts[1] in acquirer.checkouts:
            checkout = acquirer.checkouts[parts[1]]
            acquirer._expire(checkout)
            return _checkout_json(checkout, acquirer.base_url)
    raise _Refusal(404, "resource_missing", "no such resource", kept=False)


def _control(acquirer: Acquirer, method: str, command: str, body: dict[str, Any]) -> dict[str, Any]:
    """The tests' levers; see AcquirerControl in tests/acquirer_support.py for each one's meaning."""
    webhook: Webhook | None = None
    with acquirer.lock:
        if method == "GET" and command == "state":
            return {"executions": {key: call.executions for key, call in acquirer.calls.items()},
                    "payments": {ref: _payment_json(p) for ref, p in acquirer.payments.items()},
                    "webhooks": {w.id: {"body": json.loads(w.body), "deliveries": w.deliveries}
                                 for w in acquirer.webhooks.values()},
                    "secrets": list(acquirer.secrets)}
        if method != "POST":
            raise _Refusal(404, "resource_missing", "no such control", kept=False)
        if command == "delay":
            acquirer.delay_s = float(body.get("seconds", 0))
            count = body.get("count")
            acquirer.delay_count = None if count is None else int(count)
        elif command == "slow":
            acquirer.slow_s = float(body["seconds"])
        elif command == "hold":
            acquirer.hold_count = int(body.get("count", 1))
            acquirer.released.clear()
        elif command == "drop":
            acquirer.drop_count = int(body.get("count", 1))
            acquirer.drop_mode = "503" if body.get("mode") == "503" else "close"
        elif command == "release":
            acquirer.hold_count = 0
            acquirer.released.set()
        elif command == "drift":
            day = date.fromisoformat(str(body.get("day") or _today().isoformat()))
            change = str(body.get("change"))
            if change not in ("drop", "extra", "amount", "state"):
                raise _Refusal(400, "parameter_invalid", "change must be drop, extra, amount or state", kept=False)
            acquirer.drift.setdefault(day, []).append(Drift(change, str(body.get("provider_ref", "")),
                                                            int(body.get("amount_minor", 0)),
                                                            str(body.get("state", "failed"))))
        elif command == "rotate":
            secret = body.get("secret")
            return {"secrets": acquirer.rotate(str(secret) if secret else None, bool(body.get("keep_previous", True)))}
        elif command == "replay":
            webhook = acquirer.webhooks.get(str(body.get("event")))
            if webhook is None:
                raise _Refusal(404, "resource_missing", "no such webhook event", kept=False)
            if body.get("fresh_signature"):
                webhook = Webhook(webhook.id, webhook.body, sign(acquirer.secrets[0], int(time.time()), webhook.body),
                                  webhook.deliveries)
        elif command == "expire":
            checkout = acquirer.checkouts.get(str(body.get("ref")))
            if checkout is None:
                raise _Refusal(404, "resource_missing", "no such QR checkout", kept=False)
            checkout.expires_at = datetime.now(UTC) - timedelta(seconds=1)
        elif command == "webhook_url":
            acquirer.webhook_url = str(body.get("url", ""))
        else:
            raise _Refusal(404, "resource_missing", "no such control", kept=False)
    if webhook is not None:
        return {"delivered": deliver(acquirer, webhook)}
    return {"ok": True}


def deliver(acquirer: Acquirer, webhook: Webhook, attempts: int = 3) -> int | str:
    """Post a webhook to the hub (retrying a failure twice, a second apart); the last attempt's status."""
    outcome: int | str = "no webhook URL configured"
    for attempt in range(attempts):
        if not acquirer.webhook_url:
            break
        request = urllib.request.Request(acquirer.webhook_url, data=webhook.body, method="POST", headers={
            "Content-Type": "application/json", "NovaPOS-Signature": webhook.signature})
        try:
            with urllib.request.urlopen(request, timeout=10, context=acquirer.webhook_tls) as response:
                outcome = response.status
        except urllib.error.HTTPError as error:
            outcome = error.code
        except OSError as error:
            outcome = str(error)[:200]
        with acquirer.lock:
            webhook.deliveries.append(outcome)
        log.info("webhook %s %s -> %s", webhook.id, acquirer.webhook_url, outcome)
        if isinstance(outcome, int) and (outcome < 500 and outcome != 429):
            break
        if attempt + 1 < attempts and acquirer.stopping.wait(1.0):
            break
    return outcome


def terminal_reporter(url: str, timeout: float = 2.0) -> Callable[[Approval], None]:
    """The mock payment terminal's `report_approval` for the simulator at `url`: each approval becomes a
    terminal authorization there (its reference the provider_ref), so the hub can capture, void and refund it.
    A simulator that cannot be reached is logged and the approval stands (the hub's capture will then be
    declined, as a real acquirer that never saw the authorization would)."""
    def report(approval: Approval) -> None:
        body = json.dumps({"reference": approval.reference, "amount_minor": approval.amount_minor,
                           "currency": approval.currency, "card": approval.card,
                           "auth_code": approval.auth_code}).encode()
        request = urllib.request.Request(f"{url}/v1/terminal_authorizations", data=body, method="POST", headers={
            "Content-Type": "application/json", "Idempotency-Key": f"terminal-{approval.reference}"})
        try:
            with urllib.request.urlopen(request, timeout=timeout):
                pass
        except OSError as error:
            log.warning("the terminal's approval %s did not reach the acquirer: %s", approval.reference, error)
    return report


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m mocks.acquirer", description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8790)
    parser.add_argument("--webhook-url", default="", help="where payment webhooks are posted (the hub's route)")
    parser.add_argument("--secrets-file", type=Path, required=True,
                        help="the webhook signing secrets, newest first (created with a new secret if missing)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if not args.secrets_file.exists():
        write_secrets(args.secrets_file, ["whsec_" + secrets_module.token_hex(24)])
    acquirer = Acquirer(read_secrets(args.secrets_file), secrets_file=args.secrets_file, webhook_url=args.webhook_url)
    server = AcquirerServer(acquirer, args.host, args.port).start()
    log.info("acquirer simulator at %s", server.url)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    main()
