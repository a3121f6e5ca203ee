"""Helpers for the loyalty tests: a migrated database with two tenants and their customers, run on an asyncio loop
of its own (hub code is asyncio), and sales and returns for a customer built as a till builds them."""

from __future__ import annotations

import asyncio
import copy
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import asyncpg

from hub.db import create_pool, migrate
from hub.loyalty.sales import apply_returns, apply_sales
from novapos.wire.envelope import Envelope
from novapos.wire.ids import uuid7
from novapos.wire.schemas import SCHEMAS
from tests.events import sale_v3_body

T = TypeVar("T")

ALICE = uuid.UUID("0190a3c4-7e1f-7b2a-9c3d-00000000a11c")
BOB = uuid.UUID("0190a3c4-7e1f-7b2a-9c3d-000000000b0b")
STRANGER = uuid.UUID("0190a3c4-7e1f-7b2a-9c3d-00000000057a")  # the other tenant's

WORLD = f"""
INSERT INTO tenants (tenant, name, currency) VALUES ('demo', 'Demo', 'EUR'), ('other', 'Other', 'EUR');
INSERT INTO customers (tenant, id, name, created_by) VALUES ('demo', '{ALICE}', 'Alice', 'test'),
    ('demo', '{BOB}', 'Bob', 'test'), ('other', '{STRANGER}', 'Stranger', 'test');
"""


def in_loyalty(database_url: str, work: Callable[[asyncpg.Pool], Awaitable[T]], *, pool_size: int = 8) -> T:
    """Run `work` with a pool of a migrated database holding WORLD."""
    async def run() -> T:
        pool = await create_pool(database_url, max_size=pool_size)
        try:
            await migrate(pool)
            await pool.execute(WORLD)
            return await work(pool)
        finally:
            await pool.close()
    return asyncio.run(run())


def _eur(minor: int) -> dict[str, Any]:
    return {"minor": minor, "currency": "EUR"}


def customer_sale(customer: uuid.UUID, lines: list[tuple[str, int, int]], *, points: tuple[str, int, bool] | None
                  = None, ts: int | None = None, store: str = "store-001") -> Envelope:
    """A sale.completed v5 for `customer` of `lines` (sku, quantity, unit price), no tax, paid by an optional
    points tender (redemption, points, offline; a point is worth 1 minor) and cash for the rest."""
    template = sale_v3_body()["lines"][1]
    built = []
    for number, (sku, quantity, unit) in enumerate(lines, start=1):
        line = copy.deepcopy(template)
        line.update({"line": f"l{number}", "sku": sku, "quantity": quantity, "list_price": _eur(unit),
                     "unit_price": _eur(unit), "order_discount": _eur(0), "amount": _eur(unit * quantity),
                     "tax": {"class": "food", "rate_ppm": 0, "included": True, "amount": _eur(0)}})
        line.pop("discount", None)
        line.pop("override", None)
        built.append(line)
    total = sum(unit * quantity for _, quantity, unit in lines)
    tenders: list[dict[str, Any]] = []
    if points is not None:
        redemption, count, offline = points
        tenders.append({"id": f"p-{redemption}", "method": "points", "amount": _eur(count),
                        "points": {"customer": str(customer), "points": count, "redemption": redemption,
                                   "offline": offline}})
    if (cash := total - sum(tender["amount"]["minor"] for tender in tenders)) > 0:
        tenders.append({"id": "cash-1", "method": "cash", "amount": _eur(cash)})
    body = {"till": "till-1", "session": "s-1", "cashier": "alice", "currency": "EUR", "customer": {"id": str(customer)},
            "lines": built, "promotions_version": 0, "total": _eur(total), "tax_total": _eur(0), "tenders": tenders,
            "change": _eur(0)}
    SCHEMAS[("sale.completed", 5)](body)
    return Envelope(id=uuid7(), type="sale.completed", v=5, tenant="demo", store=store, seq=1,
                    ts=int(time.time() * 1000) if ts is None else ts, body=body)


def customer_return(sale: Envelope, returned: list[tuple[int, int]], *, refund_points: int = 0) -> Envelope:
    """A return.completed v3 of `returned` (original line, quantity) of `sale`, refunded in cash (and
    `refund_points` points back to the customer)."""
    lines = sale.body["lines"]
    items = []
    for number, quantity in returned:
        line = lines[number - 1]
        unit = line["unit_price"]["minor"]
        items.append({"original_line": number, "sku": line["sku"], "name": line["name"], "quantity": quantity,
                      "unit_price": _eur(unit), "amount": _eur(unit * quantity),
                      "tax": {"class": "food", "rate_ppm": 0, "included": True, "amount": _eur(0)},
                      "condition": "resaleable", "restock": True})
    back = sum(item["amount"]["minor"] for item in items)
    customer = sale.body["customer"]["id"]
    refunds: list[dict[str, Any]] = []
    if refund_points:
        refunds.append({"id": "r-points", "method": "points", "amount": _eur(refund_points),
                        "points": {"customer": customer, "points": refund_points}})
    if back - refund_points > 0:
        refunds.append({"id": "r-cash", "method": "cash", "amount": _eur(back - refund_points)})
    body = {"till": "till-1", "session": "s-1", "cashier": "alice", "currency": "EUR",
            "original": {"order": str(sale.id), "store": sale.store}, "customer": {"id": customer},
            "returned": items, "restocking_fee": _eur(0), "lines": [], "tenders": [], "refunds": refunds,
            "change": _eur(0), "total": _eur(-back)}
    SCHEMAS[("return.completed", 3)](body)
    return Envelope(id=uuid7(), type="return.completed", v=3, tenant="demo", store=sale.store, seq=2,
                    ts=sale.ts + 1000, body=body)


async def apply(pool: asyncpg.Pool, *events: Envelope) -> None:
    """Apply as the ingest does: each type's appliers in one transaction."""
    async with pool.acquire() as conn, conn.transaction():
        sales = [event for event in events if event.type == "sale.completed"]
        returns = [event for event in events if event.type == "return.completed"]
        if sales:
            await apply_sales(conn, sales)
        if returns:
            await apply_returns(conn, returns)


async def balance_and_ledger(pool: asyncpg.Pool, customer: uuid.UUID) -> tuple[int, int, int]:
    """(the account's balance, the sum of its ledger, the points its open lots hold)."""
    row = await pool.fetchrow(
        "SELECT a.balance, (SELECT coalesce(sum(points), 0) FROM loyalty_ledger l WHERE l.tenant = a.tenant AND"
        " l.customer = a.customer) AS ledger, (SELECT coalesce(sum(remaining), 0) FROM loyalty_lots o WHERE"
        " o.tenant = a.tenant AND o.customer = a.customer) AS lots FROM loyalty_accounts a WHERE a.tenant = 'demo'"
        " AND a.customer = $1", customer)
    return int(row["balance"]), int(row["ledger"]), int(row["lots"])
