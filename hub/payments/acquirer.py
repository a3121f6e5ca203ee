"""The hub's payment provider over HTTP: hub.payments.gateway's interface spoken to a Stripe-like JSON API (the
acquirer simulator, mocks.acquirer, in the demo and the tests).

Transport failures are sorted by what they mean for the money. A provider that could not be reached (no
connection, no free connection in the pool, or it said 429 "not processed") did nothing:
`GatewayUnavailable`. Anything later (no answer in `timeout_s`, a dropped connection, a 5xx, an answer that
does not make sense, or 409 "idempotency key in use": the key's call may still be out) has an unknown outcome:
`GatewayTimeout`, and the caller asks `status(key)` before anything else. The provider is an outside party: its
answers are checked like a client's input (types, bounds, the states a call can end in, what the call asked)
before the hub believes them.

Each call's latency is observed in `novapos_hub_payment_gateway_seconds{call, outcome}` (outcome: the answer's,
such as authorized or declined, or timeout, unavailable, bad_answer, never_seen); the histogram is defined here,
with the one module that observes it.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from urllib.parse import quote

import httpx
from prometheus_client import Histogram

from hub.payments.gateway import (
    PROVIDER_REF,
    Answer,
    GatewayTimeout,
    GatewayUnavailable,
    Outcome,
    QrCheckout,
    SettlementLine,
)
from novapos import validators

GATEWAY_SECONDS = Histogram(
    "novapos_hub_payment_gateway_seconds", "Time the payment provider took to answer one call",
    ["call", "outcome"], buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30))
_KEY = re.compile(r"[\x21-\x7e]{1,255}")
_ENDS: dict[str, dict[str, Outcome]] = {
    "authorize": {"authorized": Outcome.AUTHORIZED, "captured": Outcome.CAPTURED},
    "terminal_authorization": {"authorized": Outcome.AUTHORIZED},
    "capture": {"captured": Outcome.CAPTURED},
    "cancel": {"cancelled": Outcome.CANCELLED},
    "refund": {"refunded": Outcome.REFUNDED},
}
"""The states each call's successful answer may report, and what they mean."""


class BadAnswer(GatewayTimeout):
    """The provider answered something the hub cannot believe: the call's outcome is unknown."""


class HttpGateway:
    """hub.payments.gateway.Gateway over the provider's HTTP API at `base_url`."""

    def __init__(self, base_url: str, provider: str, timeout_s: float = 10.0) -> None:
        self.name = provider
        self.base_url = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self._client: httpx.AsyncClient | None = None

    async def authorize(self, key: str, amount_minor: int, currency: str, card: str, *,
                        capture: bool = False) -> Answer:
        body = {"amount_minor": amount_minor, "currency": currency, "card": card, "capture": capture}
        return await self._call("authorize", key, "/v1/authorizations", body, "", Asked(amount_minor, currency))

    async def capture(self, key: str, provider_ref: str, amount_minor: int) -> Answer:
        return await self._call("capture", key, f"/v1/authorizations/{_provider_ref(provider_ref)}/capture",
                                {"amount_minor": amount_minor}, provider_ref, Asked(amount_minor))

    async def cancel(self, key: str, provider_ref: str) -> Answer:
        return await self._call("cancel", key, f"/v1/authorizations/{_provider_ref(provider_ref)}/cancel", {},
                                provider_ref)

    async def refund(self, key: str, provider_ref: str, amount_minor: int) -> Answer:
        return await self._call("refund", key, "/v1/refunds",
                                {"payment": _provider_ref(provider_ref), "amount_minor": amount_minor}, provider_ref,
                                Asked(amount_minor))

    async def status(self, key: str, call: str, provider_ref: str, amount_minor: int | None,
                     currency: str) -> Answer | None:
        with _observed("status") as outcome:
            response = await self._send("status", "GET", f"/v1/calls/{quote(_key(key), safe='')}")
            if response.status_code == 404:
                outcome[0] = "never_seen"
                return None
            record = _object(response, "status")
            name, status, answer = record.get("call"), record.get("status"), record.get("answer")
            if name not in _ENDS or type(status) is not int or not isinstance(answer, dict):
                raise BadAnswer(f"the provider's record of call {key} is not a payment call's answer")
            if name != call:
                raise BadAnswer(f"the provider's record of call {key} is a {name}, not the {call} asked")
            found = _answer(call, status, answer, provider_ref,
                            None if amount_minor is None else Asked(amount_minor, currency))
            outcome[0] = found.outcome.value
            return found

    async def settlement(self, day: date) -> list[SettlementLine]:
        with _observed("settlement"):
            response = await self._send("settlement", "GET", f"/v1/settlements/{day.isoformat()}")
            report = _object(response, "settlement")
            lines = report.get("lines")
            if report.get("day") != day.isoformat() or not isinstance(lines, list):
                raise BadAnswer(f"the provider's settlement report for {day} is not one")
            return [_line(line) for line in lines]

    async def qr_checkout(self, key: str, amount_minor: int, currency: str, description: str) -> QrCheckout:
        body = {"amount_minor": amount_minor, "currency": currency, "description": description}
        with _observed("qr_checkout"):
            checkout = _object(await self._send("qr_checkout", "POST", "/v1/qr_checkouts", body, key), "qr_checkout")
            try:
                pay_url = validators.text("pay_url", checkout.get("pay_url"), max_length=500)
                if not pay_url.startswith(("https://", "http://")):
                    raise validators.Invalid("pay_url", "must be an http(s) address")
                expires_at = datetime.fromisoformat(validators.text("expires_at", checkout.get("expires_at")))
                if expires_at.tzinfo is None:
                    raise validators.Invalid("expires_at", "must carry its time zone")
                if (checkout.get("amount_minor"), checkout.get("currency")) != (amount_minor, currency):
                    raise validators.Invalid("amount_minor", "is not the amount asked for")
                return QrCheckout(_provider_ref(checkout.get("id")), pay_url, expires_at)
            except ValueError as error:
                raise BadAnswer(f"the provider's QR checkout is not one: {error}") from None

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    # -- the wire ------------------------------------------------------------------------------------

    async def _call(self, name: str, key: str, path: str, body: dict[str, Any], provider_ref: str,
                    asked: Asked | None = None) -> Answer:
        with _observed(name) as outcome:
            response = await self._send(name, "POST", path, body, key)
            try:
                payload = response.json()
            except ValueError:
                raise BadAnswer(f"the provider's answer to {name} is not JSON") from None
            if not isinstance(payload, dict):
                raise BadAnswer(f"the provider's answer to {name} is not a JSON object")
            answer = _answer(name, response.status_code, payload, provider_ref, asked)
            outcome[0] = answer.outcome.value
            return answer

    async def _send(self, name: str, method: str, path: str, body: dict[str, Any] | None = None,
                    key: str = "") -> httpx.Response:
        """The provider's response (any status but 429 and 5xx); GatewayUnavailable when nothing was sent,
        GatewayTimeout when the outcome is unknown."""
        headers = {"Idempotency-Key": _key(key)} if method == "POST" else {}
        try:
            response = await asyncio.wait_for(
                self._http().request(method, self.base_url + path, json=body, headers=headers), self.timeout_s)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol) as error:
            raise GatewayUnavailable(f"the payment provider could not be reached: {error!r}") from None
        except (TimeoutError, httpx.TransportError) as error:
            raise GatewayTimeout(f"the payment provider did not answer {name} in {self.timeout_s} s "
                                 f"({error!r}): the outcome is unknown") from None
        if response.status_code == 429:
            raise GatewayUnavailable(f"the payment provider is busy (429) and did not {name}")
        if response.status_code >= 500:
            raise GatewayTimeout(f"the payment provider failed ({response.status_code}) on {name}: "
                                 "the outcome is unknown")
        return response

    def _http(self) -> httpx.AsyncClient:
        """One client (and connection pool) for the gateway's life, made in the event loop that uses it."""
        if self._client is None:
            self._client = httpx.AsyncClient(
                timeout=httpx.Timeout(self.timeout_s), headers={"User-Agent": "NovaPOS-hub"},
                limits=httpx.Limits(max_connections=32, max_keepalive_connections=8))
        return self._client


@contextmanager
def _observed(call: str) -> Iterator[list[str]]:
    """Observe the block's time in GATEWAY_SECONDS under `call` and its outcome: the one the block sets in the
    list it is given (the answer's), or how it failed (timeout, unavailable, bad_answer)."""
    started = time.monotonic()
    outcome = ["answered"]
    try:
        yield outcome
    except BadAnswer:
        outcome[0] = "bad_answer"
        raise
    except GatewayTimeout:
        outcome[0] = "timeout"
        raise
    except GatewayUnavailable:
        outcome[0] = "unavailable"
        raise
    finally:
        GATEWAY_SECONDS.labels(call, outcome[0]).observe(time.monotonic() - started)


@dataclass(frozen=True)
class Asked:
    """What a call asked for, which its answer must agree with."""
    amount_minor: int
    """An authorization may hold less (a partial approval), never more; a capture or refund moves exactly this."""
    currency: str = ""


def _answer(name: str, status: int, payload: dict[str, Any], provider_ref: str, asked: Asked | None = None
            ) -> Answer:
    """A call's answer (its HTTP status and JSON body) as an Answer; BadAnswer for one the hub cannot believe.
    `asked`: what the call asked for (None for a void: it moves no amount of its own)."""
    try:
        if status == 200:
            ends = _ENDS.get(name)
            state = payload.get("status")
            if ends is None or state not in ends:
                raise validators.Invalid("status", f"{validators.describe(state)} is not how {name} can end")
            outcome = ends[str(state)]
            ref = _provider_ref(payload.get("id"))
            if name == "refund":
                if provider_ref and payload.get("payment") != provider_ref:
                    raise validators.Invalid("payment", "is not the payment the refund was asked for")
                amount = validators.minor_units("amount_minor", payload.get("amount_minor"))
            else:
                if provider_ref and ref != provider_ref:
                    raise validators.Invalid("id", "is not the payment the call was about")
                field = {Outcome.CAPTURED: "captured_minor"}.get(outcome, "authorized_minor")
                amount = validators.minor_units(field, payload.get(field))
            if asked is not None:
                _agrees(name, asked, amount, payload.get("currency"))
            auth_code = _optional_text("auth_code", payload.get("auth_code"), 32)
            return Answer(outcome, ref, amount, auth_code)
        error = payload.get("error")
        if not isinstance(error, dict):
            raise validators.Invalid("error", "is missing from a refusal")
        message = _optional_text("error.message", error.get("message"), 200)
        if status == 409 and error.get("code") == "idempotency_key_in_use":
            raise GatewayTimeout(f"the provider says the key of {name} is in use (a call still out, or another "
                                 "request): the outcome is unknown")
        if status in (402, 404):
            ref = error.get("provider_ref") or provider_ref
            return Answer(Outcome.DECLINED, _provider_ref(ref) if ref else "", 0, message=message)
        if status in (400, 409, 413, 422):
            return Answer(Outcome.FAILED, provider_ref, 0, message=message)
        raise validators.Invalid("status", f"{status} is not an answer the provider gives")
    except ValueError as error:
        raise BadAnswer(f"the provider's answer to {name} cannot be believed: {error}") from None


def _agrees(name: str, asked: Asked, amount: int, currency: Any) -> None:
    """validators.Invalid unless an answer's amount and currency fit what the call asked for."""
    if asked.currency and currency != asked.currency:
        raise validators.Invalid("currency", f"is not the {asked.currency} asked for")
    fits = 0 < amount <= asked.amount_minor if name == "authorize" else amount == asked.amount_minor
    if not fits:
        raise validators.Invalid("amount", f"{amount} does not fit the {asked.amount_minor} asked for")


def _line(line: Any) -> SettlementLine:
    try:
        if not isinstance(line, dict):
            raise validators.Invalid("line", "is not an object")
        kind = line.get("kind")
        state = line.get("state")
        if kind not in ("capture", "refund") or state not in ("settled", "failed"):
            raise validators.Invalid("line", "has an unknown kind or state")
        refund_ref = line.get("refund_ref", "")
        return SettlementLine(
            _provider_ref(line.get("provider_ref")), str(kind),
            validators.minor_units("amount_minor", line.get("amount_minor")),
            validators.currency("currency", line.get("currency")), str(state),
            _provider_ref(refund_ref) if refund_ref else "")
    except ValueError as error:
        raise BadAnswer(f"the provider's settlement line cannot be believed: {error}") from None


def _object(response: httpx.Response, name: str) -> dict[str, Any]:
    """A successful answer's JSON object; BadAnswer for anything else."""
    try:
        payload = response.json()
    except ValueError:
        payload = None
    if response.status_code != 200 or not isinstance(payload, dict):
        raise BadAnswer(f"the provider answered {name} with {response.status_code}")
    return payload


def _optional_text(where: str, value: Any, max_length: int) -> str:
    """Text the provider may leave out or empty ("" then)."""
    return "" if value is None or value == "" else validators.text(where, value, max_length=max_length)


def _provider_ref(value: Any) -> str:
    if not isinstance(value, str) or not PROVIDER_REF.fullmatch(value):
        raise validators.Invalid("provider_ref", "must be 1 to 64 letters, digits, ., _ or -")
    return value


def _key(key: str) -> str:
    if not _KEY.fullmatch(key):
        raise ValueError("an idempotency key is 1 to 255 printable ASCII characters")
    return key
