"""Promotion tests' world: stock_world's tenants, stores and coffee SKUs with categories, past sales written as
the sales applier would (for the simulation to replay), and a promotion body as the console sends it."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from novapos.wire.envelope import Envelope
from novapos.wire.ids import uuid7
from tests.conftest import query
from tests.stock_world import build_world

UNIT = 499


async def promotion_world(database_url: str) -> None:
    """stock_world, its coffee in category food/coffee (as a catalog change: a new version, stamped, so that a
    publisher that already sent the items sends them again)."""
    await build_world(database_url)
    await query(database_url, "WITH v AS (UPDATE catalog_versions SET version = version + 1 WHERE tenant = 'demo'"
                              " RETURNING version), p AS (UPDATE products SET category = 'food/coffee', version ="
                              " (SELECT version FROM v) WHERE tenant = 'demo') UPDATE variants SET version ="
                              " (SELECT version FROM v) WHERE tenant = 'demo'")


async def past_sales(database_url: str, store: str, count: int, *, quantity: int = 2, days_ago: float = 1.0,
                     sku: str = "COF-250") -> None:
    """`count` sales of `quantity` x `sku` at UNIT each at `store`, `days_ago` days ago."""
    at = datetime.now(UTC) - timedelta(days=days_ago)
    for index in range(count):
        sold = at + timedelta(seconds=index)  # its id a UUIDv7 of its time, as a till makes it (hub.partitions)
        event = uuid.UUID(int=(int(sold.timestamp() * 1000) << 80) | (0x7 << 76) | (0b10 << 62)
                          | (uuid.uuid4().int & ((1 << 62) - 1)))
        total = UNIT * quantity
        await query(database_url, "INSERT INTO inbox (event_id, tenant, store, seq, type) VALUES"
                                  " ($1, 'demo', $2, $3, 'sale.completed')", event, store, index + 1)
        await query(database_url,
                    "INSERT INTO sales (event_id, tenant, store, seq, till, session, cashier, currency, total_minor,"
                    " tendered_minor, change_minor, completed_at) VALUES ($1, 'demo', $2, $3, 'till-1', 's1',"
                    " 'bob', 'EUR', $4, $4, 0, $5)", event, store, index + 1, total, sold)
        await query(database_url,
                    "INSERT INTO sale_lines (event_id, line_no, line_id, sku, name, quantity, unit_price_minor,"
                    " list_price_minor, amount_minor) VALUES ($1, 1, 'l1', $2, 'Coffee', $3, $4, $4, $5)",
                    event, sku, quantity, UNIT, total)


def percent_off(name: str, basis_points: int, **more: Any) -> dict[str, Any]:
    return {"name": name, "kind": "percent", "value": basis_points,
            "target": {"skus": [], "categories": ["food/coffee"]}, **more}


def _eur(minor: int) -> dict[str, Any]:
    return {"minor": minor, "currency": "EUR"}


def promoted_sale(promotions: list[tuple[str, str, int]], *, version: int, seq: int = 1, store: str = "store-001",
                  at_ms: int | None = None, quantity: int = 2, sku: str = "COF-250") -> Envelope:
    """A sale.completed v5 of `quantity` x `sku` at UNIT, the till having applied `promotions` (id, name, amount)
    with its promotions at catalog version `version`; tax-free, paid in cash."""
    off = sum(amount for _, _, amount in promotions)
    amount = UNIT * quantity - off
    line = {"line": "l1", "sku": sku, "name": "Ground coffee 250 g", "attributes": [], "quantity": quantity,
            "list_price": _eur(UNIT), "unit_price": _eur(UNIT),
            "promotions": [{"promotion": p, "name": n, "amount": _eur(a)} for p, n, a in promotions],
            "order_discount": _eur(0), "amount": _eur(amount), "catalog_version": version,
            "tax": {"class": "std", "rate_ppm": 0, "included": True, "amount": _eur(0)}}
    if not promotions:
        del line["promotions"]
    body = {"till": "till-1", "session": "s-1", "cashier": "alice", "currency": "EUR", "lines": [line],
            "promotions_version": version, "total": _eur(amount), "tax_total": _eur(0),
            "tenders": [{"id": f"t-{seq}", "method": "cash", "amount": _eur(amount)}], "change": _eur(0)}
    return Envelope(id=uuid7(), type="sale.completed", v=5, tenant="demo", store=store, seq=seq,
                    ts=at_ms if at_ms is not None else int(time.time() * 1000), body=body)
