"""Drawer events and the sales of each drawer session, applied inside the inbox's transaction.

The inbox applies one batch's events type by type (hub.domains.appliers: this domain's drawer.opened, moved and
closed before any sale.completed), so a session's rows are upserted by whichever event names them. A sale or
return names its session (`drawer_session`, read by field name from any version: v3 carries it); it is attached
to it always, and flagged late when the session's Z report was received in an earlier transaction (the store
committed it before the close, yet the hub met it after: held, dead-lettered and redriven). A late sale still
lands, and the console lists it beside the Z report it missed.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import asyncpg

from novapos.wire.envelope import Envelope


async def apply_opened(conn: asyncpg.Connection, events: Sequence[Envelope]) -> None:
    await conn.executemany(
        "INSERT INTO drawer_sessions (tenant, store, session, event_id, till, currency, opened_by, opened_ms, "
        "float_minor, float_counts) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT DO NOTHING",
        [(e.tenant, e.store, e.body["session"], e.id, e.body["till"], e.body["currency"], e.body["cashier"], e.ts,
          e.body["float"]["total"]["minor"], json.dumps(e.body["float"]["counts"])) for e in events])


async def apply_moved(conn: asyncpg.Connection, events: Sequence[Envelope]) -> None:
    await conn.executemany(
        "INSERT INTO drawer_moves (event_id, tenant, store, session, seq, kind, amount_minor, reason, actor, approver, "
        "moved_ms) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        [(e.id, e.tenant, e.store, e.body["session"], e.seq, e.body["kind"], e.body["amount"]["minor"],
          e.body.get("reason"), e.body["actor"], e.body.get("approver"), e.ts) for e in events])


async def apply_closed(conn: asyncpg.Connection, events: Sequence[Envelope]) -> None:
    await conn.executemany(
        "INSERT INTO z_reports (tenant, session, event_id, store, till, z_number, closed_by, closed_ms, counted_minor, "
        "expected_minor, difference_minor, approver, counted, z) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) ON CONFLICT DO NOTHING",
        [(e.tenant, e.body["session"], e.id, e.store, e.body["till"], e.body["z"]["number"], e.body["cashier"], e.ts,
          e.body["counted"]["total"]["minor"], e.body["expected"]["minor"], e.body["difference"],
          e.body.get("approver"), json.dumps(e.body["counted"]["counts"]), json.dumps(e.body["z"]))
         for e in events])


def _minor(value: Any) -> int:
    return int(value["minor"]) if isinstance(value, dict) and isinstance(value.get("minor"), int) else 0


async def _attach(conn: asyncpg.Connection, events: Sequence[Envelope], kind: str) -> None:
    rows = [(e.id, e.tenant, e.store, str(e.body["drawer_session"]), e.seq,
             _minor(e.body.get("total")) if kind == "sale" else
             sum(_minor(item.get("amount")) for item in e.body.get("returned", ()) if isinstance(item, dict)))
            for e in events if isinstance(e.body.get("drawer_session"), str)]
    if not rows:
        return
    await conn.execute(
        "INSERT INTO drawer_sales (event_id, tenant, store, session, seq, kind, total_minor, late) "
        "SELECT u.event_id, u.tenant, u.store, u.session, u.seq, $7, u.total, EXISTS ("
        "  SELECT 1 FROM z_reports z WHERE z.tenant = u.tenant AND z.session = u.session AND z.received_at < now()) "
        "FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::bigint[]) "
        "AS u(event_id, tenant, store, session, seq, total)",
        *(list(column) for column in zip(*rows, strict=True)), kind)


async def attach_sales(conn: asyncpg.Connection, events: Sequence[Envelope]) -> None:
    await _attach(conn, events, "sale")


async def attach_returns(conn: asyncpg.Connection, events: Sequence[Envelope]) -> None:
    await _attach(conn, events, "return")
