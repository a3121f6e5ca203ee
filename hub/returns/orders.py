"""Answers a store asking for a sale by its order id (novapos.*.*.req.order): a return of another store's sale.

Only a sale of the asking store's own tenant is found (the subject says who asks: NATS confines a store to its own
subjects); another tenant's is "not found", like an unknown id. Each line carries what is still returnable at the
hub, which counts the returns of every store (hub.returns.applier). A tender's `reference` is a QR payment's tender
id (its key at the hub, so the store refunds it through the hub's payments); a card's is not kept here (the card
goes back at the store that took it) and cash has none. A v5 sale answers its `customer` (an id: the return's
points are reversed for them, return.completed v3), a points tender its `points` and a gift card tender its masked
`card` and `redemption` (what a refund to it names).
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import asyncpg

from novapos.wire.orders import KIND, decode_request, encode_answer
from novapos.wire.subjects import parse_request_subject

ORDER_REQUESTS = f"novapos.*.*.req.{KIND}"
SALE_SQL = (
    "SELECT s.store, s.till, s.currency, (extract(epoch FROM s.completed_at) * 1000)::bigint AS ts, s.customer_id,"
    " (SELECT coalesce(json_agg(json_build_object('line_no', l.line_no, 'sku', l.sku, 'name', l.name,"
    "   'quantity', l.quantity, 'unit_minor', l.unit_price_minor, 'amount', l.amount_minor, 'tax_class', l.tax_class,"
    "   'rate_ppm', l.tax_rate_ppm, 'included', l.tax_included,"
    "   'returnable', greatest(0, l.quantity - coalesce(r.returned, 0))) ORDER BY l.line_no), '[]')"
    "   FROM sale_lines l LEFT JOIN sale_line_returns r ON r.sale_event_id = l.event_id AND r.line_no = l.line_no"
    "   WHERE l.event_id = s.event_id)::text AS lines,"
    " (SELECT coalesce(json_agg(json_build_object('method', t.method, 'amount', t.amount_minor,"
    "   'reference', CASE WHEN t.method = 'qr' THEN t.tender_id END, 'points', t.points_points,"
    "   'card', t.gift_card_masked, 'redemption', t.gift_card_redemption)"
    "   ORDER BY t.tender_no), '[]') FROM sale_tenders t WHERE t.event_id = s.event_id)::text AS tenders"
    " FROM sales s WHERE s.tenant = $1 AND s.event_id = $2")


EXCHANGE_SQL = (
    "SELECT r.store, r.till, r.currency, (extract(epoch FROM r.returned_at) * 1000)::bigint AS ts,"
    " (SELECT json_agg(json_build_object('line_no', l.line_no, 'sku', l.sku, 'name', l.name,"
    "   'quantity', l.quantity, 'unit_minor', l.unit_price_minor, 'amount', l.amount_minor, 'tax_class', l.tax_class,"
    "   'rate_ppm', l.tax_rate_ppm, 'included', l.tax_included,"
    "   'returnable', greatest(0, l.quantity - coalesce(c.returned, 0))) ORDER BY l.line_no)"
    "   FROM return_lines l LEFT JOIN sale_line_returns c ON c.sale_event_id = l.event_id AND c.line_no = l.line_no"
    "   WHERE l.event_id = r.event_id AND l.kind = 'new')::text AS lines, '[]' AS tenders, r.customer_id"
    " FROM returns r WHERE r.tenant = $1 AND r.event_id = $2"
    " AND EXISTS (SELECT FROM return_lines l WHERE l.event_id = r.event_id AND l.kind = 'new')")
"""An exchange's new lines as an order (its refunds go to cash: the hub keeps no tender of a return)."""


async def find(pool: asyncpg.Pool, tenant: str, order: str) -> dict[str, Any] | None:
    """The sale (or exchange) with that order id of this tenant, as the till's return needs it; None if none."""
    row = await pool.fetchrow(SALE_SQL, tenant, uuid.UUID(order))
    if row is None:
        row = await pool.fetchrow(EXCHANGE_SQL, tenant, uuid.UUID(order))
    if row is None:
        return None
    return {"order": order, "store": row["store"], "till": row["till"], "currency": row["currency"], "ts": row["ts"],
            "customer": row["customer_id"], "lines": json.loads(row["lines"]), "tenders": json.loads(row["tenders"])}


async def answer_order(pool: asyncpg.Pool, subject: str, data: bytes) -> bytes:
    """Responder of novapos.*.*.req.order (a bad request raises validators.Invalid: a 400 error reply)."""
    tenant, _store = parse_request_subject(subject, KIND)
    return encode_answer(await find(pool, tenant, decode_request(data)))
