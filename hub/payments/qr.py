"""Pay by QR code, the hub's side: the till's pay_qr request starts a checkout at the provider, the provider's
webhook ends it (hub.payments.webhooks), and a checkout left unpaid past its expiry is cancelled.

The intent is made through the service like any other (method "qr", idempotent on the tender's id) and stays
awaiting_payment_method while the customer's phone is on the provider's page. The checkout is asked with the
key "qr:<intent id>", which the provider keeps: a till that asks again after a lost answer gets the same
checkout, never a second one. The checkout (its pay_url and expiry) is kept beside the intent, so that a
repeated request is answered from PostgreSQL without calling the provider again.

Expiry asks the provider by cancelling the checkout there (Payments.cancel): the provider ends an unpaid checkout
(its page takes no money after that) and refuses to cancel one the customer has paid, so a payment made just
before the code expired, whose webhook is still on its way, is never cancelled at the hub. Asking for a status
and cancelling after would leave a window between the two; the provider's one answer leaves none.
"""

from __future__ import annotations

import logging
from typing import Any

import asyncpg
import trio

from hub.console.context import Console
from hub.payments import intents, provider, requests
from hub.payments.gateway import GatewayTimeout, GatewayUnavailable
from hub.payments.intents import Intent
from hub.payments.model import Refused, State
from hub.payments.service import SYSTEM, Conflict, NoProvider, NotFound, Payments
from novapos import validators
from novapos.wire.payments import QR, decode, encode
from novapos.wire.subjects import parse_request_subject

log = logging.getLogger(__name__)

QR_REQUESTS = f"novapos.*.*.req.{QR}"
SWEEP_EVERY_S = 10.0
"""How often unpaid checkouts past their expiry are looked for (a QR code lives for minutes)."""
SWEEP_BATCH = 100
RETRY_REFUSED_S = 300
"""A checkout whose cancel the provider refused (paid, its webhook not here yet) is asked about again after this."""
EXPIRY_ACTOR = f"{SYSTEM}qr-expiry"


def checkout_key(intent_id: object) -> str:
    """The provider's idempotency key of an intent's checkout (and what its status is asked by)."""
    return f"qr:{intent_id}"


async def answer_qr(pool: asyncpg.Pool, subject: str, data: bytes) -> bytes:
    """Responder of novapos.*.*.req.pay_qr: {tender_id, till, amount_minor, currency, actor} ->
    {intent, pay_url, expires_at}, or {"refused": {code, message, state?}}."""
    tenant, store = parse_request_subject(subject, QR)
    body = decode("a pay_qr request", data)
    tender_id = validators.token("tender_id", body.get("tender_id"))
    till = validators.token("till", body.get("till"))
    amount = validators.minor_units("amount_minor", body.get("amount_minor"), minimum=1)
    currency = validators.currency("currency", body.get("currency"))
    who = requests.actor("actor", body.get("actor"))
    payments = provider.current()
    try:
        if payments.gateway is None:
            raise NoProvider("QR payments need a payment provider, and this hub has none: take card or cash")
        intent = await payments.create(tenant, store, tender_id=tender_id, method="qr", amount_minor=amount,
                                       currency=currency, actor=who, till=till)
        return encode(await _checkout(pool, payments, intent, f"{store} {till}"))
    except (Refused, NotFound, Conflict, NoProvider) as exc:
        return encode({"refused": requests.refusal(exc)})
    except (GatewayUnavailable, GatewayTimeout):
        return encode({"refused": {"code": 503, "message": "the payment provider did not answer: try again, or "
                                                           "take card or cash"}})


async def _checkout(pool: asyncpg.Pool, payments: Payments, intent: Intent, description: str) -> dict[str, Any]:
    """The intent's checkout: the one kept, or a new one asked of the provider and kept with its reference."""
    kept_sql = "SELECT pay_url, expires_at FROM payment_qr_checkouts WHERE intent_id = $1"
    async with pool.acquire() as conn:
        kept = await conn.fetchrow(kept_sql, intent.id)
    if kept is None:
        if intent.state != State.AWAITING_PAYMENT_METHOD:
            raise Refused("authorize", intent.state, f"this QR payment is {intent.state}: it has no code to show")
        assert payments.gateway is not None
        checkout = await payments.gateway.qr_checkout(checkout_key(intent.id), intent.amount_minor,
                                                      intent.currency, description)
        async with pool.acquire() as conn, conn.transaction():
            locked = await intents.by_id(conn, intent.tenant, intent.id, lock=True)
            if locked is not None:  # the reference is a note, not a state change: no event
                intent = locked if locked.provider_ref else \
                    await intents.change(conn, locked, locked.state, provider_ref=checkout.provider_ref)
            await conn.execute("INSERT INTO payment_qr_checkouts (intent_id, tenant, provider_ref, pay_url, expires_at)"
                               " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (intent_id) DO NOTHING", intent.id,
                               intent.tenant, checkout.provider_ref, checkout.pay_url, checkout.expires_at)
            kept = await conn.fetchrow(kept_sql, intent.id)
    return {"intent": intent.to_json(), "pay_url": kept["pay_url"], "expires_at": kept["expires_at"].isoformat()}


async def expire(pool: asyncpg.Pool, payments: Payments) -> int:
    """(asyncio side) Cancel the unpaid checkouts past their expiry, at the provider; how many were cancelled. The
    provider's cancel is the question and the answer at once: it refuses to cancel a checkout the customer has
    paid (or declined), whose webhook then settles the intent; such a checkout is looked at again later."""
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            "SELECT c.intent_id, c.tenant FROM payment_qr_checkouts c JOIN payment_intents i ON i.id = c.intent_id"
            " WHERE c.expires_at < now() AND i.state = 'awaiting_payment_method' ORDER BY c.expires_at LIMIT $1",
            SWEEP_BATCH)
    cancelled = 0
    for row in rows:
        try:
            intent = await payments.cancel(row["tenant"], row["intent_id"], actor=EXPIRY_ACTOR,
                                           reason="the QR code expired unpaid")
        except (Refused, NotFound, NoProvider) as exc:  # settled meanwhile (its webhook), or no provider to ask
            log.info("QR payment %s past its expiry was not cancelled: %s", row["intent_id"], exc)
            continue
        if intent.state == State.CANCELLED:
            cancelled += 1
            continue
        log.warning("the provider would not cancel QR payment %s past its expiry (%s): its webhook should settle "
                    "it; asking again in %d s", intent.id, intent.last_error or intent.state, RETRY_REFUSED_S)
        async with pool.acquire() as conn:
            await conn.execute("UPDATE payment_qr_checkouts SET expires_at = now() + make_interval(secs => $2)"
                               " WHERE intent_id = $1", intent.id, RETRY_REFUSED_S)
    return cancelled


async def expire_checkouts(console: Console) -> None:
    """Service: the expiry sweep, every SWEEP_EVERY_S; it outlives PostgreSQL's and the provider's absences."""
    while True:
        await trio.sleep(SWEEP_EVERY_S)
        if console.pool is None:
            continue
        try:
            await console.seam.run(expire, console.pool, provider.current())
        except Exception as exc:
            log.warning("the QR expiry sweep failed (%s: %s); it runs again in %.0f s", type(exc).__name__, exc,
                        SWEEP_EVERY_S)
