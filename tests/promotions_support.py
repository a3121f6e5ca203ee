"""Promotion tests' world: stock_world's tenants, stores and coffee SKUs with categories, past sales written as
the sales applier would (for the simulation to replay), and a promotion body as the console sends it."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from tests.conftest import query
from tests.stock_world import build_world

UNIT = 499


async def promotion_world(database_url: str) -> None:
    """stock_world, its coffee in category food/coffee."""
    await build_world(database_url)
    await query(database_url, "UPDATE products SET category = 'food/coffee' WHERE tenant = 'demo'")


async def past_sales(database_url: str, store: str, count: int, *, quantity: int = 2, days_ago: float = 1.0,
                     sku: str = "COF-250") -> None:
    """`count` sales of `quantity` x `sku` at UNIT each at `store`, `days_ago` days ago."""
    at = datetime.now(UTC) - timedelta(days=days_ago)
    for index in range(count):
        event = uuid.uuid4()
        total = UNIT * quantity
        await query(database_url, "INSERT INTO inbox (event_id, tenant, store, seq, type) VALUES"
                                  " ($1, 'demo', $2, $3, 'sale.completed')", event, store, index + 1)
        await query(database_url,
                    "INSERT INTO sales (event_id, tenant, store, seq, till, session, cashier, currency, total_minor,"
                    " tendered_minor, change_minor, completed_at) VALUES ($1, 'demo', $2, $3, 'till-1', 's1',"
                    " 'bob', 'EUR', $4, $4, 0, $5)", event, store, index + 1, total, at + timedelta(seconds=index))
        await query(database_url,
                    "INSERT INTO sale_lines (event_id, line_no, line_id, sku, name, quantity, unit_price_minor,"
                    " list_price_minor, amount_minor) VALUES ($1, 1, 'l1', $2, 'Coffee', $3, $4, $4, $5)",
                    event, sku, quantity, UNIT, total)


def percent_off(name: str, basis_points: int, **more: Any) -> dict[str, Any]:
    return {"name": name, "kind": "percent", "value": basis_points,
            "target": {"skus": [], "categories": ["food/coffee"]}, **more}
