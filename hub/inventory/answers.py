"""The hub's answer to a till asking for an item's stock (novapos.wire.stock): the item at the asking store's
own locations and at the other locations of its region, warehouses included, own ones first.

The store is the one in the request's subject: NATS lets a store publish only on its own subjects, so the
subject says who asks; the body only says which SKU.
"""

from __future__ import annotations

import asyncpg

from novapos.wire.stock import (
    MAX_LOCATIONS,
    LocationStock,
    StockAnswer,
    decode_request,
    encode_answer,
    parse_stock_request_subject,
)

ASKER_SQL = ("SELECT (SELECT region FROM stores WHERE tenant = $1 AND store = $2) AS region,"
             " EXISTS (SELECT FROM variants WHERE tenant = $1 AND sku = $3) AS known")
NEARBY_SQL = (
    "SELECT l.location, l.name, l.kind, l.store, coalesce(l.store = $2, false) AS own,"
    " coalesce(b.on_hand, 0) AS on_hand, coalesce(b.reserved, 0) AS reserved"
    " FROM locations l LEFT JOIN stock_balances b ON b.location_id = l.id AND b.sku = $4"
    " WHERE l.tenant = $1 AND (l.store = $2 OR l.region = $3) AND l.kind <> 'damaged'"  # not for sale
    f" ORDER BY own DESC, l.kind = 'warehouse', l.location LIMIT {MAX_LOCATIONS}")


async def answer_stock(pool: asyncpg.Pool, subject: str, data: bytes) -> bytes:
    """Responder of novapos.*.*.req.stock (a bad request raises validators.Invalid: a 400 error reply)."""
    tenant, store = parse_stock_request_subject(subject)
    sku = decode_request(data)
    async with pool.acquire() as conn:
        asker = await conn.fetchrow(ASKER_SQL, tenant, store, sku)
        if asker["region"] is None:
            return encode_answer(StockAnswer(sku, asker["known"], (), error=(
                f"the hub does not know store {store!r} of tenant {tenant!r}: it must be provisioned")))
        rows = await conn.fetch(NEARBY_SQL, tenant, store, asker["region"], sku)
    return encode_answer(StockAnswer(sku, asker["known"], tuple(
        LocationStock(row["location"], row["name"], row["kind"], row["store"], row["own"], row["on_hand"],
                      row["reserved"], row["on_hand"] - row["reserved"]) for row in rows)))
