"""The customer 360: one read of everything a person at the till or the console needs about a customer.

Profile (hub.customers.records), loyalty (hub.loyalty.accounts.summary: points, tier, what expires soon), the most
recent orders across the tenant's stores (newest first, by the hub's receive time), and preferences. Orders are
read through sales_customer (tenant, customer_id, received_at DESC, event_id DESC: 0181), so the view costs the
same for a customer with ten orders as with ten thousand.

Scope: a customer belongs to the tenant (they shop anywhere), so anyone with VIEW_CUSTOMERS sees the record; the
orders are sales, so a console user sees only the orders of stores in their VIEW_SALES reach (`stores`, None: all)
and the 360 says how many others there are (orders_elsewhere), never what they hold. A till sees every store's
orders of the customer standing at it (the store's own tenant only).

Latency budget: p95 under 50 ms at the hub for a tenant of thousands of customers and tens of thousands of orders
(tests/test_customers_360.py measures it).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import asyncpg

from hub.customers import records
from hub.loyalty import accounts

RECENT_ORDERS = 20
ORDERS_SQL = (
    "SELECT s.event_id, s.store, st.name AS store_name, s.till, s.received_at, s.completed_at, s.total_minor,"
    " s.currency, s.v FROM sales s LEFT JOIN stores st USING (tenant, store)"
    " WHERE s.tenant = $1 AND s.customer_id = $2 AND ($3::text[] IS NULL OR s.store = ANY($3))"
    " ORDER BY s.received_at DESC, s.event_id DESC LIMIT $4")
ELSEWHERE_SQL = ("SELECT count(*) FROM sales WHERE tenant = $1 AND customer_id = $2 AND $3::text[] IS NOT NULL"
                 " AND NOT store = ANY($3)")


def order(row: asyncpg.Record) -> dict[str, Any]:
    return {"order": str(row["event_id"]), "store": row["store"], "store_name": row["store_name"],
            "till": row["till"], "at": row["received_at"].isoformat(), "sold_at": row["completed_at"].isoformat(),
            "total_minor": row["total_minor"], "currency": row["currency"], "v": row["v"]}


async def three_sixty(conn: asyncpg.Connection, tenant: str, customer: uuid.UUID, *,
                      stores: Sequence[str] | None = None, limit: int = RECENT_ORDERS) -> dict[str, Any] | None:
    """The 360 of a customer of `tenant`, or None when there is none. `stores`: the stores whose orders the
    reader may see (None: every store)."""
    found = await records.by_id(conn, tenant, customer)
    if found is None:
        return None
    key = str(customer)
    reach = None if stores is None else list(stores)
    rows = await conn.fetch(ORDERS_SQL, tenant, key, reach, limit)
    elsewhere = 0 if reach is None else int(await conn.fetchval(ELSEWHERE_SQL, tenant, key, reach))
    return {"customer": found, "loyalty": await accounts.summary(conn, tenant, customer),
            "orders": [order(row) for row in rows], "orders_elsewhere": elsewhere,
            "preferences": found["preferences"]}
