"""Completed sales from the stores, written to PostgreSQL as sales, lines and tenders."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import asyncpg

from novapos.wire.envelope import Envelope


async def apply_sales(conn: asyncpg.Connection, events: Sequence[Envelope]) -> None:
    """Insert new (never seen before) sale.completed events, in bulk, inside the caller's transaction."""
    if not events:
        return
    sales, lines, tenders = [], [], []
    for event in events:
        body = event.body
        tendered = sum(tender["amount"]["minor"] for tender in body["tenders"])
        sales.append((
            event.id, event.tenant, event.store, event.seq, body["till"], body["session"], body["cashier"],
            body["currency"], body["total"]["minor"], tendered, body["change"]["minor"],
            datetime.fromtimestamp(event.ts / 1000, tz=UTC),
        ))
        for number, line in enumerate(body["lines"], 1):
            lines.append((event.id, number, line["sku"], line["name"], line["quantity"],
                          line["unit_price"]["minor"], line["amount"]["minor"]))
        for number, tender in enumerate(body["tenders"], 1):
            tenders.append((event.id, number, tender["method"], tender["amount"]["minor"]))
    await conn.copy_records_to_table("sales", records=sales, columns=[
        "event_id", "tenant", "store", "seq", "till", "session", "cashier", "currency",
        "total_minor", "tendered_minor", "change_minor", "completed_at"])
    await conn.copy_records_to_table("sale_lines", records=lines, columns=[
        "event_id", "line_no", "sku", "name", "quantity", "unit_price_minor", "amount_minor"])
    await conn.copy_records_to_table("sale_tenders", records=tenders, columns=[
        "event_id", "tender_no", "method", "amount_minor"])
