"""Completed sales from the stores, written to PostgreSQL as sales, lines and tenders, with the
per-store takings the console shows kept current in the same transaction.

Every version of sale.completed lands while stores upgrade: a v2 line keeps its price lock (catalog version,
tax class, rate, included, tax amount) and a v2 sale its tax total; a v1 sale has NULL there. A v3 line adds its
list price (the lock), attributes, price override, discount and order discount share, a v3 sale its order
discount and drawer session, a v3 tender its id and card details, a v4 tender paid by QR code its intent and the
provider's reference: what changed a price is stored as such. A v5 sale adds its customer (an id only), the
promotions version its till evaluated and its coupons; a v5 line what each promotion took off it, a v5 tender paid by
loyalty points or gift card its details (the loyalty and gift card domains act on them in their own appliers).
Every line is then checked against the catalog (hub.sales.replay) in the same transaction. Set-based throughout: one COPY
per table per batch, one query for the catalog, one statement for the takings."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import asyncpg

from hub.giftcards.numbers import as_sent
from hub.sales import replay
from novapos.wire.envelope import Envelope

PLAUSIBLE_SINCE_MS = int(datetime(2020, 1, 1, tzinfo=UTC).timestamp() * 1000)
PLAUSIBLE_AHEAD_MS = 86_400_000
"""A sale stamped before 2020 or more than a day ahead of the hub was made by a wrong clock."""


def clock_suspect(ts: int, now_ms: int) -> bool:
    """Whether a sale's time is implausible: kept as sold, flagged for a person to review."""
    return ts < PLAUSIBLE_SINCE_MS or ts > now_ms + PLAUSIBLE_AHEAD_MS


async def apply_sales(conn: asyncpg.Connection, events: Sequence[Envelope]) -> None:
    """Insert new (never seen before) sale.completed events, in bulk, inside the caller's transaction."""
    if not events:
        return
    now_ms = int(time.time() * 1000)
    sales, lines, tenders = [], [], []
    for event in events:
        body = event.body
        tendered = sum(tender["amount"]["minor"] for tender in body["tenders"])
        tax_total = body.get("tax_total")
        sales.append((
            event.id, event.tenant, event.store, event.seq, body["till"], body["session"], body["cashier"],
            body["currency"], body["total"]["minor"], tendered, body["change"]["minor"],
            datetime.fromtimestamp(event.ts / 1000, tz=UTC), clock_suspect(event.ts, now_ms),
            event.v, None if tax_total is None else tax_total["minor"], body.get("drawer_session"),
            *_discount(body.get("order_discount")), customer_id(body.get("customer")),
            body.get("promotions_version"), json.dumps(body.get("coupons", [])),
        ))
        for number, line in enumerate(body["lines"], 1):
            lines.append((event.id, number, line["sku"], line["name"], line["quantity"],
                          line["unit_price"]["minor"], line["amount"]["minor"], *_price_lock(line), *_changes(line),
                          *_promotions(line)))
        for number, tender in enumerate(body["tenders"], 1):
            tenders.append((event.id, number, tender["method"], tender["amount"]["minor"], tender.get("id"),
                            *_details(tender.get("card"), CARD_FIELDS), *_details(tender.get("qr"), QR_FIELDS),
                            *_details(tender.get("points"), POINTS_FIELDS),
                            *_details(_gift_card(tender.get("gift_card")), GIFT_CARD_FIELDS)))
    await conn.copy_records_to_table("sales", records=sales, columns=[
        "event_id", "tenant", "store", "seq", "till", "session", "cashier", "currency",
        "total_minor", "tendered_minor", "change_minor", "completed_at", "clock_suspect", "v", "tax_total_minor",
        "drawer_session", "order_discount_kind", "order_discount_value", "order_discount_reason",
        "order_discount_minor", "customer_id", "promotions_version", "coupons"])
    await conn.copy_records_to_table("sale_lines", records=lines, columns=[
        "event_id", "line_no", "sku", "name", "quantity", "unit_price_minor", "amount_minor", *PRICE_LOCK_COLUMNS,
        *CHANGE_COLUMNS, "promotions", "promotions_minor"])
    await conn.copy_records_to_table("sale_tenders", records=tenders, columns=[
        "event_id", "tender_no", "method", "amount_minor", "tender_id", *(f"card_{name}" for name in CARD_FIELDS),
        *(f"qr_{name}" for name in QR_FIELDS), *(f"points_{name}" for name in POINTS_FIELDS),
        "gift_card_masked", "gift_card_redemption"])
    await _count_takings(conn, events)
    await replay.validate(conn, events)


PRICE_LOCK_COLUMNS = ("catalog_version", "tax_class", "tax_rate_ppm", "tax_included", "tax_minor")


def _price_lock(line: dict[str, Any]) -> tuple[Any, ...]:
    """A v2 line's price lock as its columns; a v1 line (no lock) gives NULLs."""
    tax = line.get("tax")
    if tax is None:
        return (None,) * len(PRICE_LOCK_COLUMNS)
    return line["catalog_version"], tax["class"], tax["rate_ppm"], tax["included"], tax["amount"]["minor"]


CHANGE_COLUMNS = ("line_id", "attributes", "list_price_minor", "override_reason", "override_approver", "discount_kind",
                  "discount_value", "discount_reason", "discount_minor", "order_discount_minor")
CARD_FIELDS = ("reference", "scheme", "masked", "auth_code", "terminal", "signature")
QR_FIELDS = ("intent", "provider_ref")
POINTS_FIELDS = ("customer", "points", "redemption", "offline")
GIFT_CARD_FIELDS = ("card", "redemption")


def customer_id(customer: dict[str, Any] | None) -> str | None:
    """A v5 sale's (or v3 return's) customer id as kept: a UUID in its canonical text, anything else as sent (the
    sale is never refused: the store has sold already; an id the hub does not know matches no customer)."""
    if customer is None:
        return None
    try:
        return str(uuid.UUID(customer["id"]))
    except ValueError:
        return str(customer["id"])


def _details(details: dict[str, Any] | None, fields: tuple[str, ...]) -> tuple[Any, ...]:
    """A tender's details object (card, qr, points, gift_card) as its columns; NULLs on a tender without it."""
    return (None,) * len(fields) if details is None else tuple(details[name] for name in fields)


def _gift_card(details: dict[str, Any] | None) -> dict[str, Any] | None:
    """A gift card tender's details with its card masked as the hub keeps it (hub.giftcards.numbers.as_sent)."""
    return None if details is None else {**details, "card": as_sent(details["card"])}


def _promotions(line: dict[str, Any]) -> tuple[str, int]:
    """A v5 line's promotions [{promotion, name, amount_minor}] and what they took off together ('[]', 0 before)."""
    promotions = [{"promotion": promotion["promotion"], "name": promotion["name"],
                   "amount_minor": promotion["amount"]["minor"]} for promotion in line.get("promotions", ())]
    return json.dumps(promotions), sum(promotion["amount_minor"] for promotion in promotions)


def _discount(discount: dict[str, Any] | None) -> tuple[Any, ...]:
    """A v3 discount as (kind, value, reason, amount); (NULL, NULL, NULL, 0) when there is none."""
    if discount is None:
        return None, None, None, 0
    return discount["kind"], discount["value"], discount["reason"], discount["amount"]["minor"]


def _changes(line: dict[str, Any]) -> tuple[Any, ...]:
    """A v3 line's id, attributes, list price, override and discounts as their columns (NULLs and 0s before v3)."""
    if "list_price" not in line:
        return None, None, None, None, None, None, None, None, 0, 0
    override = line.get("override") or {}
    return (line["line"], json.dumps(line["attributes"]), line["list_price"]["minor"], override.get("reason"),
            override.get("approver"), *_discount(line.get("discount")), line["order_discount"]["minor"])


async def _count_takings(conn: asyncpg.Connection, events: Sequence[Envelope]) -> None:
    """Add the sales to store_takings, one row per store and currency (locked in one order: no deadlocks).
    last_sale is the hub's receive time (as sales.received_at): a store's clock may be years ahead."""
    await conn.execute(
        "INSERT INTO store_takings AS t (tenant, store, currency, sales, total_minor, last_sale)"
        " SELECT tenant, store, currency, count(*), sum(total), now()"
        " FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[]) AS u(tenant, store, currency, total)"
        " GROUP BY tenant, store, currency ORDER BY tenant, store, currency"
        " ON CONFLICT (tenant, store, currency) DO UPDATE SET sales = t.sales + EXCLUDED.sales,"
        "  total_minor = t.total_minor + EXCLUDED.total_minor, last_sale = greatest(t.last_sale, EXCLUDED.last_sale)",
        [e.tenant for e in events], [e.store for e in events], [e.body["currency"] for e in events],
        [e.body["total"]["minor"] for e in events])
