"""Every shape of audit search reads an index, never the whole table: EXPLAIN at volume (240,000 records of
two tenants, 50 stores, 200 actors) for each filter alone and together, for tenant-wide and regional viewers. The
records span three partitions (migration 0213: the legacy one and two months), each read through its own index.
So are a customer's own records (target = their id: their export and erasure, hub.customers.privacy; migration 0225)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import asyncpg

from hub.audit.query import Filters, Viewer, _sql
from hub.customers.privacy import AUDIT_SQL, DELETE_KEPT_SQL
from hub.partitions import maintain, partitions
from tests.audit_support import run

FILL = """
INSERT INTO audit_records (tenant, seq, at, actor, action, store, target, details, prev_hash, hash, recorded_at)
SELECT $1, g, timestamptz '2026-01-01 00:00:00+00' + g * interval '1 second', 'user' || g % 200,
       (ARRAY['price.set', 'stock.adjusted', 'login', 'login.failed', 'till.void', 'till.override'])[1 + g % 6],
       CASE WHEN g % 10 = 0 THEN NULL ELSE 'store-' || lpad((g % 50)::text, 3, '0') END, 'SKU-' || g % 9973,
       '{}', '\\x00', '\\x00', $3::timestamptz + g * interval '1 minute'
FROM generate_series(1, $2) AS g
"""
REGIONAL = Viewer("user7", ["store-001", "store-002", "store-003"])
TENANT_WIDE = Viewer("ada", None)
SHAPES = [
    Filters(), Filters(limit=500), Filters(before=90_000), Filters(store="store-007"), Filters(actor="user42"),
    Filters(action="till.void"), Filters(action="no.such.action"), Filters(store="store-007", before=1000),
    Filters(since=datetime(2026, 1, 2, tzinfo=UTC), until=datetime(2026, 1, 3, tzinfo=UTC)),
    Filters(store="store-007", action="till.void", before=60_000),
    Filters(actor="user42", since=datetime(2026, 1, 1, tzinfo=UTC)),
]


def _unindexed(plan: str, partitions: set[str], selective: bool) -> list[str]:
    """The partitions that `plan` reads through no index, or, for a selective filter, through the key (the tenant's
    whole history walked backwards: no sequential scan, but as slow as one)."""
    unread = []
    for name in partitions:
        used = re.findall(rf"(?:using|Bitmap Index Scan on) ({name}_\w+)", plan)
        if not used or (selective and any(index.endswith(("_pkey", "_key")) for index in used)):
            unread.append(name)
    return unread


def test_every_audit_search_reads_an_index_at_volume(database_url: str) -> None:
    async def scenario(pool: asyncpg.Pool) -> None:
        async with pool.acquire() as conn:
            bound = (await partitions(conn, "audit_records"))[0].high
            assert bound is not None
            await maintain(pool, now=bound + timedelta(days=60))
            for tenant in ("demo", "big"):  # 120,000 minutes from 30 days before the bound: legacy and two months
                await conn.execute(FILL, tenant, 120_000, bound - timedelta(days=30))
            homes = await conn.fetchval("SELECT count(DISTINCT tableoid) FROM audit_records")
            assert homes == 3, homes
            await conn.execute("INSERT INTO audit_personal (tenant, seq, field, value, salt, at) SELECT tenant, seq,"
                               " 'phone', '\"+4930123\"', '\\x00', at FROM audit_records WHERE seq % 10 = 0")
            await conn.execute("ANALYZE audit_records")
            await conn.execute("ANALYZE audit_personal")
            sizes = dict(await conn.fetch("SELECT relname, reltuples FROM pg_class"
                                          " WHERE relname LIKE 'audit\\_records\\_%' AND relkind = 'r'"))
            small = {name for name, rows in sizes.items() if rows < 1000}  # read whole in no time: months ahead
            assert len(sizes) - len(small) == 3, sizes
            problems = []
            for viewer in (TENANT_WIDE, REGIONAL):
                for filters in SHAPES:
                    sql, args = _sql("demo", filters, viewer)
                    plan = "\n".join(row[0] for row in await conn.fetch(f"EXPLAIN {sql}", *args))
                    # A selective filter must use an index of its own on every partition holding records.
                    selective = bool(filters.store or filters.actor == "user42" or filters.action == "no.such.action")
                    scanned = set(re.findall(r"Seq Scan on (\w+)", plan)) - small
                    nothing = "One-Time Filter: false" in plan  # a store outside the viewer's reach: none read
                    unindexed = [] if nothing else _unindexed(plan, set(sizes) - small, selective)
                    if scanned or unindexed:
                        problems.append(f"{viewer.login} {filters} (scanned {sorted(scanned)}, no index or the key"
                                        f" {unindexed}):\n{plan}")
            for name, sql in (("AUDIT_SQL", AUDIT_SQL), ("DELETE_KEPT_SQL", DELETE_KEPT_SQL)):  # a customer's own
                plan = "\n".join(row[0] for row in await conn.fetch(f"EXPLAIN {sql}", "demo", "SKU-42"))
                scanned = set(re.findall(r"Seq Scan on (\w+)", plan)) - small
                unindexed = _unindexed(plan, set(sizes) - small, selective=True)
                if scanned or unindexed:
                    problems.append(f"privacy {name} (scanned {sorted(scanned)}, no index or the key {unindexed}):\n{plan}")
            assert not problems, "\n\n".join(problems)
    run(database_url, scenario)
