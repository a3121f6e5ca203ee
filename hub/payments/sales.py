"""The stores' card tenders at the hub: the terminals' approvals become intents, completed sales are captured, returns
refunded at a till are recorded, and the money of cards taken offline is asked for when their sale arrives.

Appliers (inside the ingest's inbox transaction; no provider call there, hub.payments.intents only):

- `card.approved`: the intent of the tender (AUTHORIZED, or AWAITING_PAYMENT_METHOD holding the card token of a
  card taken offline). The till's fast path (pay_intent) may have made it already: then it is the same intent.
- `card.declined`: the attempt, a FAILED intent (a split with a decline in the middle keeps every attempt).
- `sale.completed`: each card (and QR) tender's intent is linked to the order, and the split is checked (P6-04):
  the tenders add up to the total, and each card tender's intent holds the tender's amount. A mismatch is marked
  `attention` for a person, never refused: the store has sold already. A tender whose card.approved has not been
  applied yet (one batch applies sales first) is claimed in payment_tender_sales and linked when it comes.
- `return.completed`: a card refund made at a till's terminal (with the card present) is recorded on the original
  tender's intent; one the till asked the hub for (pay_refund, the same refund key) is already there.

The capture job (`capture_sales`, one hub process at a time: hub.leases) then moves the money: an offline approval whose sale has
arrived is authorized through the provider with its stored card (a decline marks it `attention` and its
payment.failed event reaches the store as a follow-up), and every intent of a completed sale still authorized is
captured. An approval whose sale never comes (abandoned) is never captured: pay_cancel or the auto-void ends it.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from prometheus_client import Counter

from hub.console.context import Console
from hub.payments import intents, model, outbox, provider
from hub.payments.intents import Intent
from hub.payments.model import State
from hub.payments.service import RETRIED_BY_ITSELF, NoProvider, Payments, free_declined_key
from hub.repeating import repeat
from novapos.config.hub import PaymentSettings
from novapos.wire.envelope import Envelope
from novapos.wire.ids import uuid7

log = logging.getLogger(__name__)

LINKED_METHODS = ("card", "qr")
"""The sale tenders that have an intent (cash has none)."""
CAPTURE_EVERY_S = 1.0
CAPTURE_BATCH = 100
SALE_CAPTURES = Counter("novapos_hub_payment_sale_captures_total",
                        "Intents of completed sales the capture service moved, by action and resulting state",
                        ["action", "state"])
OFFLINE_DECLINED = ("taken offline at till {till} and declined when the hub asked the provider for the money "
                    "({why}): follow up with the customer")


def _settings() -> tuple[str, int]:
    """The provider's name and the capture window (the installed service's; the defaults in a hub without one)."""
    try:
        payments = provider.current()
    except RuntimeError:
        defaults = PaymentSettings()
        return defaults.provider, defaults.capture_window_s
    return payments.provider, payments.settings.capture_window_s


async def apply_card_approved(conn: asyncpg.Connection, events: Sequence[Envelope]) -> None:
    """card.approved v1: the tender's intent (idempotent with the fast path), linked at once if its sale came first."""
    name, window = _settings()
    now = datetime.now(UTC)
    for event in events:
        body, card = event.body, event.body["card"]
        amount = body["amount"]["minor"]
        intent = await intents.insert_terminal_approval(
            conn, event.tenant, event.store, tender_id=body["tender"], till=body["till"], amount_minor=amount,
            authorized_minor=amount, currency=body["currency"], provider=name, provider_ref=card["reference"],
            auth_code=card.get("auth_code"), scheme=card["scheme"], masked=card["masked"], offline=body["offline"],
            card_token=body.get("card_token"), capture_window=timedelta(seconds=window), now=now)
        if (intent.amount_minor, intent.currency, intent.store) != (amount, body["currency"], event.store):
            await _attend(conn, intent, f"the terminal at till {body['till']} approved {amount} {body['currency']} "
                                        f"for this tender, recorded as {intent.amount_minor} {intent.currency}")
        claim = await conn.fetchrow("SELECT * FROM payment_tender_sales WHERE tenant = $1 AND tender_id = $2 AND"
                                    " linked_at IS NULL FOR UPDATE", event.tenant, body["tender"])
        if claim is not None and claim["store"] != intent.store:  # never capture another store's card payment
            await _attend(conn, intent, f"a sale of {claim['store']} ({claim['order_id']}) claims this "
                                        f"{intent.store} payment's tender: not linked")
        elif claim is not None:
            await _link(conn, intent, claim["order_id"], claim["amount_minor"], claim["currency"])


async def apply_card_declined(conn: asyncpg.Connection, events: Sequence[Envelope]) -> None:
    """card.declined v1: the attempt, as a FAILED intent of its tender (nothing was taken)."""
    name, _ = _settings()
    for event in events:
        body, card = event.body, event.body["card"]
        await intents.insert(conn, event.tenant, event.store, tender_id=body["tender"], method="card_present",
                             currency=body["currency"], amount_minor=body["amount"]["minor"], state=State.FAILED,
                             provider=name, till=body["till"], provider_ref=card["reference"],
                             scheme=card.get("scheme"), masked=card.get("masked"),
                             last_error=body.get("message") or "declined at the terminal")


async def apply_sales(conn: asyncpg.Connection, events: Sequence[Envelope]) -> None:
    """sale.completed (v3 on: tenders with ids): link each card/QR tender's intent to the order, check the split;
    a tender whose intent is another store's is flagged, not linked (nor captured)."""
    for event in events:
        body = event.body
        tenders = [tender for tender in body["tenders"] if tender.get("id") and tender["method"] in LINKED_METHODS]
        if not tenders:
            continue
        paid = sum(tender["amount"]["minor"] for tender in body["tenders"]) - body["change"]["minor"]
        split_off = None if paid == body["total"]["minor"] else (
            f"the sale's tenders add up to {paid}, not its total {body['total']['minor']}")
        for tender in sorted(tenders, key=lambda tender: tender["id"]):  # one lock order: no deadlocks
            amount, currency = tender["amount"]["minor"], tender["amount"]["currency"]
            await conn.execute(
                "INSERT INTO payment_tender_sales (tenant, tender_id, store, order_id, method, amount_minor, currency)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (tenant, tender_id) DO NOTHING",
                event.tenant, tender["id"], event.store, event.id, tender["method"], amount, currency)
            intent = await intents.by_tender(conn, event.tenant, tender["id"], lock=True)
            if intent is None:
                continue  # its card.approved comes later in this batch or the next: linked then
            if intent.store != event.store:  # never capture another store's card payment
                await _attend(conn, intent, f"a sale of {event.store} ({event.id}) claims this {intent.store} "
                                            "payment's tender: not linked")
                continue
            intent = await _link(conn, intent, event.id, amount, currency)
            if split_off is not None:
                await _attend(conn, intent, split_off)


async def _link(conn: asyncpg.Connection, intent: Intent, order_id: uuid.UUID, amount: int, currency: str) -> Intent:
    """Link the intent to its sale (the capture service captures it from then on), checking the tender's amount."""
    await conn.execute("UPDATE payment_tender_sales SET linked_at = now() WHERE tenant = $1 AND tender_id = $2",
                       intent.tenant, intent.tender_id)
    if intent.order_id is not None and intent.order_id != order_id:
        return await _attend(conn, intent, f"two sales claim this tender: {intent.order_id} and {order_id}")
    linked = await intents.change(conn, intent, intent.state, order_id=order_id)
    if (amount, currency) != (intent.amount_minor, intent.currency):
        linked = await _attend(conn, linked, f"the sale's tender is {amount} {currency} but its payment is "
                                             f"{intent.amount_minor} {intent.currency}")
    return linked


async def _attend(conn: asyncpg.Connection, intent: Intent, why: str) -> Intent:
    """Mark the intent for a person (the console's follow-ups); the first reason stays, later ones are logged."""
    log.warning("payment %s (tender %s) needs attention: %s", intent.id, intent.tender_id, why)
    if intent.attention:
        return intent
    return await intents.change(conn, intent, intent.state, attention=why[:500])


async def apply_returns(conn: asyncpg.Connection, events: Sequence[Envelope]) -> None:
    """return.completed: each card refund made at a till's terminal, on the original tender's intent."""
    for event in events:
        for refund in event.body["refunds"]:
            original = (refund.get("card") or {}).get("original_reference")
            if refund["method"] == "card" and original:
                await _terminal_refund(conn, event, refund, original)


async def _terminal_refund(conn: asyncpg.Connection, event: Envelope, refund: dict[str, Any], original: str) -> None:
    try:
        tender_id = str(uuid.UUID(hex=original))
    except ValueError:
        return  # a payment from before tenders had ids: no intent to record it on
    intent = await intents.by_tender(conn, event.tenant, tender_id, lock=True)
    if intent is None:
        return  # a sale paid before the hub kept intents
    key, amount = refund["id"], refund["amount"]["minor"]
    await free_declined_key(conn, event.tenant, key)
    if await conn.fetchval("SELECT 1 FROM payment_refunds WHERE tenant = $1 AND refund_key = $2", event.tenant, key):
        return  # refunded through the hub (pay_refund) under this key: already recorded
    try:
        model.may_refund(intent.state, intent.amounts, amount)
    except model.Refused as refused:
        await _attend(conn, intent, f"till {event.body['till']} refunded {amount} to this card at its terminal, but "
                                    f"the hub cannot record it: {refused}")
        return
    refund_id = uuid7()
    await conn.execute("INSERT INTO payment_refunds (id, intent_id, tenant, refund_key, amount_minor, state, via,"
                       " provider_ref, reason, actor) VALUES ($1, $2, $3, $4, $5, 'succeeded', 'terminal', $6, $7, $8)",
                       refund_id, intent.id, event.tenant, key, amount, refund["card"]["reference"],
                       event.body.get("reason"), f"till-user:{event.body['cashier']}")
    state, amounts = model.after_refund(intent.amounts, amount)
    refunded = await intents.change(conn, intent, state, refunded_minor=amounts.refunded)
    await outbox.emit(conn, event.tenant, event.store, "payment.refund", {
        "intent": refunded.to_json(),
        "refund": {"key": key, "amount_minor": amount, "state": "succeeded", "via": "terminal"}})


DUE = ("SELECT tenant, id, state, till FROM payment_intents WHERE order_id IS NOT NULL AND"
       " (state = 'authorized' OR (state = 'awaiting_payment_method' AND offline AND card_token IS NOT NULL))"
       f" AND {RETRIED_BY_ITSELF} ORDER BY updated_at LIMIT $1")
"""Intents of completed sales to move; not one whose capture the provider declined (a person's, not every round's)."""


async def capture_round(payments: Payments) -> int:
    """Authorize the offline approvals of completed sales, capture the authorized intents of completed sales; how
    many were due (a full batch: the caller goes again at once)."""
    async with payments.pool.acquire() as conn:
        due = await conn.fetch(DUE, CAPTURE_BATCH)
    for row in due:
        await _move(payments, row["tenant"], row["id"], State(row["state"]), row["till"])
    return len(due)


async def _move(payments: Payments, tenant: str, intent_id: uuid.UUID, state: State, till: str | None) -> None:
    try:
        if state == State.AUTHORIZED:
            moved = await payments.capture(tenant, intent_id, actor="hub:capture")
            SALE_CAPTURES.labels("capture", str(moved.state)).inc()
            return
        moved = await payments.authorize(tenant, intent_id, actor="hub:offline")
        SALE_CAPTURES.labels("authorize", str(moved.state)).inc()
    except model.Refused:
        return  # another hub is on it (processing) or it moved meanwhile
    except NoProvider:
        raise
    except Exception as exc:  # this intent's trouble (the provider timed out: the watchdog resolves it)
        log.warning("payment %s of a completed sale not moved now: %s: %s", intent_id, type(exc).__name__, exc)
        return
    if moved.state == State.FAILED:
        async with payments.pool.acquire() as conn, conn.transaction():
            failed = await intents.by_id(conn, tenant, intent_id, lock=True)
            if failed is not None:
                await _attend(conn, failed, OFFLINE_DECLINED.format(
                    till=till or "?", why=failed.last_error or "declined by the card's issuer"))


async def capture_sales(console: Console) -> None:
    """The capture service: a round every CAPTURE_EVERY_S (at once while rounds are full), backing off while
    PostgreSQL is away; a hub without a provider ([payments] gateway_url empty), or whose provider cannot be reached,
    says so once and moves nothing until it can."""
    told: list[str] = []

    async def step() -> int:
        try:
            return await console.seam.run(capture_round, provider.serving(console.ready_pool()))
        except NoProvider as exc:
            if str(exc) not in told[-1:]:  # said when it starts, not every round
                told.append(str(exc))
                log.warning("completed sales' card payments are not captured: %s", exc)
            return 0
    await repeat("capturing completed sales' card payments", step, CAPTURE_EVERY_S, CAPTURE_BATCH)
