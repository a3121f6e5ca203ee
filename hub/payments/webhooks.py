"""The provider's webhooks: how the hub learns that a QR payment was paid or failed, and why it believes it.

The provider posts each event to POST /api/payments/webhooks/{tenant}/{provider} with no session: the signature is
the authentication (Stripe's scheme, field notes §8). The header `NovaPOS-Signature: t=<unix>,v1=<hex>[,v1=...]`
carries HMAC-SHA256(secret, f"{t}.{raw body}"); the hub recomputes it over the bytes as they arrived (never a
re-encoding of the JSON) with each active secret and compares in constant time (hmac.compare_digest). A
timestamp further than [payments] webhook_tolerance_s from the hub's clock is refused, so a captured request
cannot be replayed later; inside the tolerance, the event's id is looked up in webhook_events, so the same event
posted twice moves a payment once (a replay is answered 200 "replayed": the provider may stop sending it).

Secrets come from [payments] webhook_secrets_file, one per line, newest first (blank lines and lines starting
with # are skipped). Rotation is an overlap: list the new secret above the old one, switch the provider to the
new one, then remove the old line; the file is read again whenever it changes, with no restart. A missing or empty file refuses every webhook (503, logged): the
provider retries later, and nothing unauthenticated is ever applied.

Every webhook is audited in the addressed tenant's chain: payment.webhook_accepted, payment.webhook_replayed or
payment.webhook_refused (with the reason). A refusal may be an attacker's: its record holds the body's size and
SHA-256, never the body. Refusals for a tenant the hub does not serve are only logged: an unknown name must not
start an audit chain.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import asyncpg
from prometheus_client import Counter
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute

from hub.audit.chain import Entry, record
from hub.console.context import Console
from hub.payments import intents, provider
from hub.payments.gateway import Outcome
from hub.payments.model import State
from novapos import validators
from novapos.adapters.http import ApiError, route
from novapos.logs import escape

log = logging.getLogger(__name__)

PATH = "/api/payments/webhooks/{tenant}/{provider}"
HEADER = "NovaPOS-Signature"
MAX_EVENT_ID_LENGTH = 255
MAX_SIGNATURES = 8
"""v1 entries looked at in one header: two during a rotation, a few more would be a provider's odd choice."""
OUTCOMES = {"payment.succeeded": Outcome.CAPTURED, "payment.failed": Outcome.FAILED}
"""The event types that move a payment, and where they move it; any other type is accepted and ignored."""
SETTLES = {"payment.succeeded": frozenset({State.CAPTURED, State.REFUNDED}), "payment.failed": frozenset({State.FAILED})}
"""Where a payment is once an event of that type has been applied to it (or was, before)."""
WEBHOOKS = Counter("novapos_hub_payment_webhooks_total", "Payment provider webhooks by result", ["result"])
"""accepted, replayed, refused: a rise in refusals is a misconfigured secret, or someone knocking."""


class Refusal(Exception):
    """A webhook the hub will not act on: the HTTP status and a sentence for the provider's dashboard."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status, self.reason = status, reason


def signature(secret: str, timestamp: int, raw: bytes) -> str:
    """The v1 signature of a body sent at `timestamp` (what the provider computes, and the hub again)."""
    return hmac.new(secret.encode(), b"%d.%s" % (timestamp, raw), hashlib.sha256).hexdigest()


def verify(header: str | None, raw: bytes, secrets: Sequence[str], now: float, tolerance_s: int) -> None:
    """Refusal unless one v1 signature in `header` is the body's under one of `secrets`, signed within the
    tolerance of `now`. Every candidate is compared in constant time, whichever matches."""
    if not header:
        raise Refusal(400, f"the request has no {HEADER} header: a webhook must be signed")
    timestamp: int | None = None
    candidates: list[str] = []
    for item in header.split(","):
        name, _, value = item.strip().partition("=")
        if name == "t" and value.isdecimal() and len(value) <= 12:
            timestamp = int(value)
        elif name == "v1" and len(candidates) < MAX_SIGNATURES:
            candidates.append(value.lower())
    if timestamp is None or not candidates:
        raise Refusal(400, f"the {HEADER} header must hold t=<unix seconds> and at least one v1=<hex signature>")
    if abs(now - timestamp) > tolerance_s:
        raise Refusal(401, f"the signature's timestamp is {int(abs(now - timestamp))} s from the hub's clock, "
                           f"more than the {tolerance_s} s allowed: a replayed or delayed webhook")
    expected = [signature(secret, timestamp, raw) for secret in secrets]
    if not any([hmac.compare_digest(mine, theirs) for mine in expected for theirs in candidates]):
        raise Refusal(401, "no signature matches the body with the hub's webhook secrets: check the provider's "
                           "signing secret against [payments] webhook_secrets_file")


class Secrets:
    """The active signing secrets, newest first, read from the file again whenever it changes."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._seen: tuple[int, int, int] | None = None
        self._secrets: tuple[str, ...] = ()
        self._missing: str | None = None

    def active(self) -> tuple[str, ...]:
        """The secrets; Refusal (503, logged when it starts) while there are none to verify with."""
        if self.path is None:
            self._refuse("[payments] webhook_secrets_file is not set")
        assert self.path is not None
        try:
            stat = os.stat(self.path)
            seen = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
            if seen != self._seen:
                lines = self.path.read_text(encoding="utf-8").splitlines()
                self._secrets = tuple(line.strip() for line in lines if line.strip() and not line.startswith("#"))
                self._seen = seen
                log.info("webhook secrets read from %s: %d active", self.path, len(self._secrets))
        except (OSError, UnicodeDecodeError) as exc:
            self._seen, self._secrets = None, ()
            self._refuse(f"the webhook secrets file {self.path} cannot be read ({type(exc).__name__})")
        if not self._secrets:
            self._refuse(f"the webhook secrets file {self.path} lists no secret")
        self._missing = None
        return self._secrets

    def _refuse(self, why: str) -> None:
        if self._missing != why:
            log.warning("every payment webhook is refused: %s; write the provider's signing secret there", why)
            self._missing = why
        raise Refusal(503, "the hub has no webhook secret to verify this with; it has been logged, retry later")


@dataclass(frozen=True)
class Event:
    """What a verified webhook says (its body is the provider's, checked like any input all the same)."""
    id: str
    type: str
    provider_ref: str = ""
    amount_minor: int = 0


def parse_event(raw: bytes) -> Event:
    """The event in a verified body; Refusal (400) when it does not hold one."""
    try:
        body = json.loads(raw)
        if not isinstance(body, dict):
            raise Refusal(400, "a webhook's body must be a JSON object")
        event_id = validators.text("the event's id", body.get("id"), max_length=MAX_EVENT_ID_LENGTH)
        event_type = validators.text("the event's type", body.get("type"), max_length=64)
        if event_type not in OUTCOMES:
            return Event(event_id, event_type)
        data = body.get("data")
        if not isinstance(data, dict):
            raise Refusal(400, f"a {event_type} event must have a data object")
        return Event(event_id, event_type,
                     validators.text("the event's data.provider_ref", data.get("provider_ref"),
                                     max_length=MAX_EVENT_ID_LENGTH),
                     validators.minor_units("the event's data.amount_minor", data.get("amount_minor")))
    except (ValueError, RecursionError) as exc:  # validators.Invalid is a ValueError, as json's errors are
        reason = str(exc) if isinstance(exc, validators.Invalid) else "a webhook's body must be JSON"
        raise Refusal(400, reason) from None


@dataclass(frozen=True)
class Received:
    """One webhook as it arrived, for its audit record: who it claims to be for, and the body's fingerprint."""
    tenant: str
    provider: str
    size: int
    sha256: str

    def details(self, **more: Any) -> dict[str, Any]:
        return {"provider": self.provider, "size": self.size, "sha256": self.sha256, **more}


async def _audit(conn: asyncpg.Connection, received: Received, action: str, actor: str, *, store: str | None = None,
                 target: str | None = None, **details: Any) -> None:
    await record(conn, Entry(received.tenant, actor, action, store=store, target=target,
                             details=received.details(**details)))
    WEBHOOKS.labels(action.removeprefix("payment.webhook_")).inc()


async def refuse(pool: asyncpg.Pool, received: Received, refusal: Refusal, verified: bool,
                 event_id: str | None = None) -> None:
    """(asyncio side) Audit a refused webhook in its tenant's chain; nothing else changes. Its actor says
    whether the signature had verified (the provider's, then) or not (anyone's)."""
    async with pool.acquire() as conn, conn.transaction():
        await _audit(conn, received, "payment.webhook_refused",
                     f"provider:{received.provider}" if verified else "webhook:unverified", target=event_id,
                     status=refusal.status, reason=refusal.reason)


async def take(pool: asyncpg.Pool, received: Received, event: Event) -> dict[str, Any]:
    """(asyncio side) Act on a verified event once: the answer's body once its effect and its record committed,
    or Refusal (audited) when it names no payment of this tenant. The payment moves first (provider_says is
    idempotent), then the event id is kept: a hub that dies in between applies the provider's retry again,
    harmlessly, where keeping the id first would have ignored the retry and lost the payment."""
    async with pool.acquire() as conn:
        seen = await conn.fetchrow("SELECT received_at FROM webhook_events WHERE provider = $1 AND event_id = $2",
                                   received.provider, event.id)
        if seen is not None:
            return await _replayed(conn, received, event, seen["received_at"])
        intent = None if event.type not in OUTCOMES else \
            await intents.by_provider_ref(conn, received.provider, event.provider_ref)
    outcome, reason, store, target = "ignored", f"{event.type} events are not acted on", None, None
    if event.type in OUTCOMES:
        if intent is None or intent.tenant != received.tenant:
            await _refuse(pool, received, event, 400, f"tenant {received.tenant} has no payment with the provider's "
                                                      f"reference {validators.describe(event.provider_ref)}")
        moved = await provider.current().provider_says(received.provider, event.provider_ref,
                                                       OUTCOMES[event.type], event.amount_minor) or intent
        if moved.state == State.PROCESSING:  # a call about it is out (the expiry's cancel): not news yet
            await _refuse(pool, received, event, 503, f"payment {moved.id} is waiting for the provider's answer to "
                                                      f"its {moved.pending}: send this event again shortly")
        store, target = moved.store, str(moved.id)
        if moved.state in SETTLES[event.type]:
            outcome, reason = "applied", f"payment {moved.id} is {moved.state}"
        else:
            reason = f"payment {moved.id} is {moved.state}, which {event.type} cannot change: a person must look"
            log.warning("a verified %s webhook (%s) names payment %s, which is %s; left for a person",
                        event.type, escape(event.id), moved.id, moved.state)
    async with pool.acquire() as conn, conn.transaction():
        kept = await conn.fetchval(
            "INSERT INTO webhook_events (provider, event_id, tenant, type, outcome, reason)"
            " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING RETURNING received_at",
            received.provider, event.id, received.tenant, event.type, outcome, reason)
        if kept is None:  # the same event, delivered twice at once, was kept by the other delivery
            return await _replayed(conn, received, event, None)
        await _audit(conn, received, "payment.webhook_accepted", f"provider:{received.provider}", store=store,
                     target=target, event_id=event.id, type=event.type, outcome=outcome, reason=reason)
    return {"outcome": outcome, "event": event.id, "message": reason}


async def _refuse(pool: asyncpg.Pool, received: Received, event: Event, status: int, reason: str) -> NoReturn:
    refusal = Refusal(status, reason)
    await refuse(pool, received, refusal, True, event.id)
    raise refusal


async def _replayed(conn: asyncpg.Connection, received: Received, event: Event, first: Any) -> dict[str, Any]:
    async with conn.transaction():
        await _audit(conn, received, "payment.webhook_replayed", f"provider:{received.provider}", target=event.id,
                     event_id=event.id, type=event.type, first_received=str(first) if first else None)
    return {"outcome": "replayed", "event": event.id,
            "message": "this event was received before; nothing was done again"}


async def _body(request: Request) -> tuple[bytes, Refusal | None]:
    """The raw body, or as much as arrived before it passed the limit (the door cuts it off: 413)."""
    chunks: list[bytes] = []
    try:
        async for chunk in request.stream():
            chunks.append(chunk)
    except ApiError as exc:
        return b"".join(chunks), Refusal(exc.status, exc.message)
    return b"".join(chunks), None


def _answer(tenant: str, refusal: Refusal) -> ApiError:
    log.info("refused a payment webhook for tenant %s: %s", tenant, refusal.reason)
    return ApiError(refusal.status, refusal.reason)


def routes(console: Console) -> list[BaseRoute]:
    settings = console.config.payments
    secrets = Secrets(settings.webhook_secrets_file)

    async def receive(request: Request) -> Response:
        tenant, named = request.path_params["tenant"], request.path_params["provider"]
        if tenant not in console.tenants:
            log.info("refused a payment webhook for %s, a tenant this hub does not serve", escape(tenant))
            WEBHOOKS.labels("refused").inc()
            raise ApiError(404, f"this hub serves no tenant {validators.describe(tenant)}")
        pool = console.ready_pool()
        raw, cut_off = await _body(request)
        received = Received(tenant, settings.provider, len(raw), hashlib.sha256(raw).hexdigest())
        verified = False
        try:
            if cut_off is not None:
                raise cut_off
            if named != settings.provider:
                raise Refusal(404, f"this hub takes webhooks from {settings.provider}, not "
                                   f"{validators.describe(named)}")
            verify(request.headers.get(HEADER), raw, secrets.active(), time.time(), settings.webhook_tolerance_s)
            verified = True
            event = parse_event(raw)
        except Refusal as refusal:
            await console.seam.run(refuse, pool, received, refusal, verified)
            raise _answer(tenant, refusal) from None
        try:
            return JSONResponse(await console.seam.run(take, pool, received, event))
        except Refusal as refusal:  # audited where it was found
            raise _answer(tenant, refusal) from None

    return [route(PATH, POST=receive)]


OPENAPI: dict[str, Any] = {"paths": {PATH: {"post": {
    "summary": "A payment provider's webhook (QR payment succeeded or failed): public, authenticated by its "
               f"{HEADER} header (t=<unix>,v1=<hex HMAC-SHA256 of \"t.body\">), at most 64 KiB",
    "security": [],
    "parameters": [
        {"name": "tenant", "in": "path", "required": True, "schema": {"type": "string",
                                                                       "pattern": validators.TOKEN_PATTERN}},
        {"name": "provider", "in": "path", "required": True, "schema": {"type": "string"}},
        {"name": HEADER, "in": "header", "required": True, "schema": {"type": "string", "maxLength": 1024}}],
    "requestBody": {"required": True, "content": {"application/json": {"schema": {
        "type": "object", "required": ["id", "type"],
        "properties": {"id": {"type": "string", "maxLength": MAX_EVENT_ID_LENGTH}, "type": {"type": "string"},
                       "data": {"type": "object", "properties": {
                           "provider_ref": {"type": "string"}, "amount_minor": {"type": "integer", "minimum": 0}}}},
        "maxProperties": 64}}}},
    "responses": {
        "200": {"description": "applied, ignored (a type the hub does not act on) or replayed (received before)",
                "content": {"application/json": {"schema": {"type": "object", "properties": {
                    "outcome": {"type": "string", "enum": ["applied", "ignored", "replayed"]},
                    "event": {"type": "string"}, "message": {"type": "string"}}}}}},
        "400": {"description": "no or malformed signature header, a body that is no event, or no such payment"},
        "401": {"description": "no signature matches, or its timestamp is outside the tolerance"},
        "404": {"description": "a tenant this hub does not serve, or another provider"},
        "409": {"description": "the payment's state cannot take this event"},
        "413": {"description": "a body over 64 KiB"},
        "503": {"description": "the hub has no webhook secret (see its log)"}},
}}}, "schemas": {}}
"""This route's description in the console's /openapi.json (merged into the payments domain's)."""
