"""The hub is split by domain: domains are discovered, their migrations run in one global order, and a
database migrated before the split is recognised as such (nothing re-run, nothing lost)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import trio

from hub.db import create_pool, migrate, planned
from hub.domains import Domain, appliers, domains
from hub.sales.applier import apply_sales

HUB = Path(__file__).resolve().parent.parent / "hub"


def test_domain_packages_are_discovered_with_what_they_bring() -> None:
    names = [domain.name for domain in domains()]
    assert {"ingest", "sales"} <= set(names)
    assert "console" not in names  # the console assembles the domains' routes; it is not one
    assert apply_sales in appliers()["sale.completed"]


def test_the_audit_chain_is_applied_last_so_ingest_locks_its_head_after_everything_else() -> None:
    """A console change locks its own rows, then the chain's head; ingest must take them in that order too."""
    types = list(appliers())
    assert types[-1] == "audit.recorded" and types.index("sale.completed") < types.index("audit.recorded")


def test_migrations_run_by_number_across_domains(tmp_path: Path) -> None:
    for domain, files in {"catalog": ["0002_products.sql"], "inventory": ["0001_stock.sql", "0003_moves.sql"]}.items():
        (tmp_path / domain).mkdir()
        for name in files:
            (tmp_path / domain / name).write_text("SELECT 1;")
    order = planned([Domain("catalog", tmp_path / "catalog"), Domain("inventory", tmp_path / "inventory")])
    assert [(m.domain, m.name) for m in order] == [
        ("inventory", "0001_stock"), ("catalog", "0002_products"), ("inventory", "0003_moves")]


async def test_a_database_migrated_before_the_split_is_recognised(empty_database_url: str) -> None:
    """The pre-split hub recorded one migration by name: 0001_inbox_and_sales. It must not run again."""
    before_split = (HUB / "ingest/migrations/0001_inbox.sql").read_text() + \
        (HUB / "sales/migrations/0002_sales.sql").read_text()

    async def run() -> tuple[list[str], set[tuple[str, str]], int, list[tuple[str, int, int]]]:
        conn = await asyncpg.connect(empty_database_url)
        await conn.execute(before_split)
        await conn.execute("CREATE TABLE schema_migrations (name text PRIMARY KEY,"
                           " applied_at timestamptz NOT NULL DEFAULT now())")
        await conn.execute("INSERT INTO schema_migrations (name) VALUES ('0001_inbox_and_sales')")
        await conn.execute("INSERT INTO inbox (event_id, tenant, store, seq, type)"
                           " VALUES (gen_random_uuid(), 'demo', 'store-001', 1, 'sale.completed')")
        await conn.close()
        pool = await create_pool(empty_database_url)
        try:
            applied = await migrate(pool)
            again = await migrate(pool)
            assert again == []
            ledger = {(row["domain"], row["name"]) for row in await pool.fetch("SELECT * FROM schema_migrations")}
            stats = [(r["store"], r["events"], r["last_seq"]) for r in await pool.fetch("SELECT * FROM store_stats")]
            return applied, ledger, await pool.fetchval("SELECT count(*) FROM inbox"), stats
        finally:
            await pool.close()
    applied, ledger, kept, stats = await trio.to_thread.run_sync(asyncio.run, run())
    assert "ingest/0001_inbox" not in applied and "sales/0002_sales" not in applied
    assert {("ingest", "0001_inbox"), ("sales", "0002_sales")} <= ledger
    assert ledger == {(m.domain, m.name) for m in planned(domains())}
    assert kept == 1
    assert stats == [("store-001", 1, 1)]  # the per-store figures start from the history already there
