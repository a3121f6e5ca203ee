"""Returns from the stores (return.completed v1 to v3) written to PostgreSQL in the inbox's transaction: the return, its
items and an exchange's new lines, and the units of each original sale line returned so far at the hub.

The hub's count is the authority across stores (hub.returns.orders answers it). Nothing is refused: the store
has already paid out, so a return of more units than were sold, of a sale the hub does not know (yet), or of
another SKU than the sale's line lands all the same, flagged in `review` for a person to look at. Each refund is kept
with its method and amount (a v3 refund to points or a gift card with its details), and a v3 return keeps the
original sale's customer (an id only; hub.loyalty reverses the points in its own applier). Returns are
few next to sales: per-event statements, in (sale, line) order so two transactions never deadlock on a line.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import asyncpg

from hub.giftcards.numbers import as_sent
from hub.sales.applier import customer_id
from novapos.wire.envelope import Envelope

INSERT_RETURN = (
    "INSERT INTO returns (event_id, tenant, store, seq, till, cashier, approver, reason, currency, original_order,"
    " original_store, total_minor, refunded_minor, restocking_fee_minor, refund_methods, returned_at, customer_id,"
    " refunds) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)")
LINE_COLUMNS = ["event_id", "line_no", "kind", "original_line", "sku", "name", "quantity", "unit_price_minor",
                "amount_minor", "tax_class", "tax_rate_ppm", "tax_included", "tax_minor", "condition", "restock"]
COUNT_RETURNED = (
    "INSERT INTO sale_line_returns AS r (sale_event_id, line_no, returned) VALUES ($1, $2, $3)"
    " ON CONFLICT (sale_event_id, line_no) DO UPDATE SET returned = r.returned + EXCLUDED.returned"
    " RETURNING returned")
SOLD_LINE = ("SELECT l.sku, l.quantity FROM sale_lines l JOIN sales s USING (event_id)"
             " WHERE s.tenant = $1 AND l.event_id = $2 AND l.line_no = $3"
             " UNION ALL SELECT l.sku, l.quantity FROM return_lines l JOIN returns r USING (event_id)"
             " WHERE r.tenant = $1 AND l.event_id = $2 AND l.kind = 'new' AND l.line_no = $3")
"""The line an item was sold on: a sale's, or an exchange's new line (the return's event id is its order id)."""


async def apply_returns(conn: asyncpg.Connection, events: Sequence[Envelope]) -> None:
    for event in events:
        await _apply(conn, event)


async def _apply(conn: asyncpg.Connection, event: Envelope) -> None:
    body = event.body
    original = body.get("original")
    order = None if original is None else uuid.UUID(original["order"])
    await conn.execute(
        INSERT_RETURN, event.id, event.tenant, event.store, event.seq, body["till"], body["cashier"],
        body.get("approver"), body.get("reason"), body["currency"], order,
        None if original is None else original["store"], body["total"]["minor"],
        sum(refund["amount"]["minor"] for refund in body["refunds"]), body["restocking_fee"]["minor"],
        [refund["method"] for refund in body["refunds"]], datetime.fromtimestamp(event.ts / 1000, tz=UTC),
        customer_id(body.get("customer")), json.dumps([_refund(refund) for refund in body["refunds"]]))
    rows: list[tuple[Any, ...]] = []
    for number, item in enumerate(body["returned"], 1):
        rows.append((event.id, number, "returned", item.get("original_line"), item["sku"], item["name"],
                     item["quantity"], item["unit_price"]["minor"], item["amount"]["minor"], *_tax(item),
                     item["condition"], item["restock"]))
    for number, line in enumerate(body["lines"], 1):
        rows.append((event.id, number, "new", None, line["sku"], line["name"], line["quantity"],
                     line["unit_price"]["minor"], line["amount"]["minor"], *_tax(line), None, None))
    await conn.copy_records_to_table("return_lines", records=rows, columns=LINE_COLUMNS)
    review = [] if order is None else await _count(conn, event.tenant, order, body["returned"])
    if review:
        await conn.execute("UPDATE returns SET review = $2 WHERE event_id = $1", event.id, review)


def _refund(refund: dict[str, Any]) -> dict[str, Any]:
    """A refund as kept: method and amount, and a points or gift card refund's details (a card's are the payments
    domain's, on its intent)."""
    kept: dict[str, Any] = {"method": refund["method"], "amount_minor": refund["amount"]["minor"]}
    if "points" in refund:
        kept["points"] = refund["points"]
    if "gift_card" in refund:  # masked whatever the till sent (hub.giftcards.numbers.as_sent)
        kept["gift_card"] = {**refund["gift_card"], "card": as_sent(refund["gift_card"]["card"])}
    return kept


def _tax(line: dict[str, Any]) -> tuple[str, int, bool, int]:
    tax = line["tax"]
    return tax["class"], tax["rate_ppm"], tax["included"], tax["amount"]["minor"]


async def _count(conn: asyncpg.Connection, tenant: str, order: uuid.UUID, returned: list[dict[str, Any]]) -> list[str]:
    """Add the returned units to their sale lines' counts; what a person should review."""
    review: list[str] = []
    by_line: dict[int, tuple[str, int]] = {}
    for item in returned:
        if (number := item.get("original_line")) is not None:
            sku, quantity = by_line.get(number, (item["sku"], 0))
            by_line[number] = (sku, quantity + item["quantity"])
    for number, (sku, quantity) in sorted(by_line.items()):
        total = await conn.fetchval(COUNT_RETURNED, order, number, quantity)  # counted even before its sale lands
        sold = await conn.fetchrow(SOLD_LINE, tenant, order, number)
        if sold is None:
            review.append(f"line {number} of order {order} is not known at the hub")
            continue
        if sold["sku"] != sku:
            review.append(f"line {number} of order {order} sold {sold['sku']}, not {sku}")
        if total > sold["quantity"]:
            review.append(f"line {number} of order {order}: {total} returned of {sold['quantity']} sold")
    return review
