"""Monthly partitions (hub.partitions, migrations 0200-0202): rows already there before the migration stay, in the
legacy partition, and read as before; new rows land in their month's partition (or the default one, taken over
when their month is made); the inbox keeps every event the stream can still redeliver, so a replay after the
months rotated applies nothing twice; a retention shorter than the stream's max age plus the margin is refused."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from hub.db import _apply, _ledger, create_pool, migrate, planned
from hub.domains import Domain, domains
from hub.ingest.inbox import Delivery, ingest
from hub.partitions import Retention, maintain, month_start, next_month, partitions, uuid7_floor
from novapos.config.hub import INBOX_MARGIN_DAYS, load_hub
from novapos.config.reading import ConfigError
from novapos.wire.envelope import Envelope
from tests.events import SUBJECT, sale_event

TENANTS = frozenset({"demo"})


def at(when: datetime, n: int) -> uuid.UUID:
    """A UUIDv7 of `when` (the n-th of that millisecond)."""
    return uuid.UUID(int=uuid7_floor(when).int | (0x7 << 76) | (0b10 << 62) | n)


def sale(seq: int, event_id: uuid.UUID) -> Envelope:
    return dataclasses.replace(sale_event(seq=seq), id=event_id)


async def _counts(conn: asyncpg.Connection) -> dict[str, int]:
    return {table: await conn.fetchval(f"SELECT count(*) FROM {table}")
            for table in ("inbox", "sales", "sale_lines", "sale_tenders")}


async def _home(conn: asyncpg.Connection, table: str, event_id: uuid.UUID) -> str:
    """The partition a row is in."""
    return str(await conn.fetchval(f"SELECT tableoid::regclass::text FROM {table} WHERE event_id = $1", event_id))


def test_rows_before_the_migration_stay_and_new_rows_land_in_their_month(database_url: str) -> None:
    now = datetime.now(UTC)
    before = [sale(seq, at(now - timedelta(days=seq), seq)) for seq in range(1, 4)]
    ahead = _month(now, 3).replace(day=15)  # past 0200's bound (the month after next), in a month made ahead
    later = sale(10, at(ahead, 1))
    far = sale(11, at(now + timedelta(days=800), 1))  # a store clock two years ahead: the default partition

    async def run() -> dict[str, Any]:
        pool = await create_pool(database_url)
        try:
            async with pool.acquire() as conn:  # the release before: every migration below 0200
                await _ledger(conn)
                for migration in planned(domains()):
                    if migration.number < 200:
                        await _apply(conn, migration, 1.0, 3)
            await ingest(pool, [Delivery(SUBJECT, e.encode()) for e in before], TENANTS)
            async with pool.acquire() as conn:
                unpartitioned = await _counts(conn)
                movements = await conn.fetchval("SELECT max(id) FROM stock_movements")
            applied = await migrate(pool)
            made = await maintain(pool, Retention.for_stream(14))
            await ingest(pool, [Delivery(SUBJECT, e.encode()) for e in (later, far)], TENANTS)
            again = await ingest(pool, [Delivery(SUBJECT, e.encode()) for e in (*before, later, far)], TENANTS)
            async with pool.acquire() as conn:
                homes = {table: [await _home(conn, table, e.id) for e in (before[0], later, far)]
                         for table in ("inbox", "sales", "sale_lines", "sale_tenders")}
                counts = await _counts(conn)
                kinds = dict(await conn.fetch("SELECT relname, relkind FROM pg_class WHERE relname = ANY($1)",
                                              ["inbox", "sales", "sale_lines", "sale_tenders", "stock_movements"]))
                ledger = [(str(row[0]), row[1]) for row in await conn.fetch(
                    "SELECT tableoid::regclass, id FROM stock_movements ORDER BY id")]
            # two years on, the far sale's month is made: it takes the row over from the default partition
            moved = await maintain(pool, Retention.for_stream(14, sales_months=0),
                                   now=now + timedelta(days=800 - 60))
            async with pool.acquire() as conn:
                far_home = await _home(conn, "sales", far.id)
                default_left = await conn.fetchval("SELECT count(*) FROM sales_default")
                sale_total = await conn.fetchval("SELECT total_minor FROM sales WHERE event_id = $1", far.id)
            return {"unpartitioned": unpartitioned, "movements": movements, "ledger": ledger, "applied": applied, "made": made, "again": again,
                    "homes": homes, "counts": counts, "kinds": kinds, "moved": moved, "far_home": far_home,
                    "default_left": default_left, "sale_total": sale_total}
        finally:
            await pool.close()

    got = asyncio.run(run())
    assert got["unpartitioned"] == {"inbox": 3, "sales": 3, "sale_lines": 3, "sale_tenders": 3}
    assert {"ingest/0200_partition_bounds", "ingest/0202_partition_by_month"} <= set(got["applied"])
    assert set(got["kinds"].values()) == {b"p"}, got["kinds"]
    assert got["made"] == 5 * 2, got["made"]  # the two months from 0200's bound up to three months ahead
    # the stock ledger: the old movements stay (stock_movements_legacy, written now), ids go on after them
    assert got["movements"] == 3 and [row[1] for row in got["ledger"]] == [1, 2, 3, 4, 5], got["ledger"]
    assert {row[0] for row in got["ledger"]} == {"stock_movements_legacy"}
    month = f"{ahead:%Y%m}"
    for table, homes in got["homes"].items():
        assert homes == [f"{table}_legacy", f"{table}_p{month}", f"{table}_default"], (table, homes)
    assert got["counts"] == {"inbox": 5, "sales": 5, "sale_lines": 5, "sale_tenders": 5}
    assert (got["again"].applied, got["again"].duplicates) == (0, 5)
    assert got["far_home"] == f"sales_p{now + timedelta(days=800):%Y%m}" and got["default_left"] == 0
    assert got["sale_total"] == 499 and got["moved"] > 0


def test_a_replay_after_the_months_rotated_applies_nothing_twice(database_url: str) -> None:
    """Sales of three months A, B, C (each received when its id says, one of A's late, in D); on D's 25th the
    inbox's months older than its retention (45 days: to C's 11th) are retired: B's, whose events the stream
    (14 days) let go long ago; A's is kept for its late event. The stream then redelivers what it may still hold
    and more: nothing is applied twice."""
    a = _month(datetime.now(UTC), 3)  # past 0200's bound (the month after next): months hub.partitions makes
    b, c, d = _month(a, 1), _month(a, 2), _month(a, 3)
    events = [sale(n, at(month.replace(day=10), n)) for n, month in enumerate((a, a, b, b, c, c), 1)]
    late = sale(7, at(a.replace(day=11), 7))
    now = d.replace(day=25)
    retention = Retention.for_stream(14)  # inbox_days = 14 + 31 = 45

    async def run() -> dict[str, Any]:
        pool = await create_pool(database_url)
        try:
            await migrate(pool)
            await maintain(pool, retention, now=a)
            result = await ingest(pool, [Delivery(SUBJECT, e.encode()) for e in (*events, late)], TENANTS)
            async with pool.acquire() as conn:
                await conn.execute("UPDATE inbox SET received_at = uuid7_time(event_id)")
                await conn.execute("UPDATE inbox SET received_at = $2 WHERE event_id = $1", late.id,
                                   d.replace(day=20))
            retired = await maintain(pool, retention, now=now)
            async with pool.acquire() as conn:
                after = [p.name for p in await partitions(conn, "inbox")]
                kept = {row[0] for row in await conn.fetch("SELECT event_id FROM inbox")}
                newest_gone = await conn.fetchval("SELECT max(received_at) FROM sales WHERE NOT event_id = ANY($1)",
                                                  list(kept))
            replay = await ingest(pool, [Delivery(SUBJECT, e.encode()) for e in (*events, late)], TENANTS)
            async with pool.acquire() as conn:
                counts = await _counts(conn)
            return {"result": result, "after": after, "retired": retired, "kept": kept, "replay": replay,
                    "counts": counts, "newest_gone": newest_gone}
        finally:
            await pool.close()

    got = asyncio.run(run())
    assert got["result"].applied == 7
    after = got["after"]
    assert f"inbox_p{a:%Y%m}" in after and f"inbox_p{b:%Y%m}" not in after, after
    assert f"inbox_p{c:%Y%m}" in after and "inbox_legacy" not in after, after
    assert got["retired"] >= 3  # the legacy partition, the months up to B
    assert got["kept"] == {e.id for e in (events[0], events[1], events[4], events[5], late)}
    # every event the inbox forgot was received before the stream's max age plus the margin (none redeliverable)
    assert got["newest_gone"] < now - timedelta(days=14 + INBOX_MARGIN_DAYS)
    # the replay: what the stream may hold is skipped; B's events, which it let go long before the inbox forgot
    # them, are refused by the sale's own key if they ever came back (dead-lettered, not applied twice)
    replay = got["replay"]
    assert (replay.applied, replay.duplicates, sum(replay.dead_lettered.values())) == (0, 5, 2)
    assert got["counts"] == {"inbox": 5, "sales": 7, "sale_lines": 7, "sale_tenders": 7}


def _month(start: datetime, months: int) -> datetime:
    month = month_start(start)
    for _ in range(months):
        month = next_month(month)
    return datetime(month.year, month.month, 1, tzinfo=UTC)


def test_an_inbox_kept_no_longer_than_the_stream_is_refused(tmp_path: Path) -> None:
    assert Retention.for_stream(14).inbox_days == 45
    assert Retention.for_stream(14, inbox_days=14 + INBOX_MARGIN_DAYS).inbox_days == 21
    with pytest.raises(ValueError, match="max_age_days 14"):
        Retention.for_stream(14, inbox_days=14 + INBOX_MARGIN_DAYS - 1)
    config = tmp_path / "hub.toml"
    config.write_text("[stream]\nmax_age_days = 30\n[retention]\ninbox_days = 36\nsales_months = 24\n")
    with pytest.raises(ConfigError, match=r"\[retention\] inbox_days must be at least \[stream\] max_age_days \(30\)"):
        load_hub(config)
    config.write_text("[stream]\nmax_age_days = 30\n[retention]\ninbox_days = 37\nsales_months = 24\n")
    assert Retention.of(load_hub(config)) == Retention(37, 24, 3)
    config.write_text("[stream]\nmax_age_days = 30\n")
    assert Retention.of(load_hub(config)).inbox_days == 61


def test_a_concurrent_index_on_a_partitioned_table_is_built_partition_by_partition(
        tmp_path: Path, database_url: str) -> None:
    """PostgreSQL refuses CREATE INDEX CONCURRENTLY on a partitioned table; hub.db builds it the way it allows (each
    partition's concurrently, attached to the table's own), so a later release indexes sales as it always did. A
    second run is a no-op; a month made afterwards gets the index with it."""
    folder = tmp_path / "probe-migrations"
    folder.mkdir()
    (folder / "9001_sales_by_cashier.sql").write_text(
        "-- migration: no-transaction\nCREATE INDEX CONCURRENTLY IF NOT EXISTS sales_cashier ON sales (tenant, cashier);\n")
    probe = Domain("probe", migrations=folder)

    async def run() -> dict[str, Any]:
        pool = await create_pool(database_url)
        try:
            await migrate(pool)
            await ingest(pool, [Delivery(SUBJECT, sale_event(seq=1).encode())], TENANTS)
            applied = await migrate(pool, [*domains(), probe])
            async with pool.acquire() as conn:
                await conn.execute("DELETE FROM schema_migrations WHERE domain = 'probe'")
            again = await migrate(pool, [*domains(), probe])
            await maintain(pool, Retention.for_stream(14), now=datetime.now(UTC) + timedelta(days=200))
            async with pool.acquire() as conn:
                valid = await conn.fetchval("SELECT indisvalid FROM pg_index WHERE indexrelid = 'sales_cashier'::regclass")
                leaves = await conn.fetchval(
                    "SELECT count(*) FROM pg_inherits WHERE inhparent = 'sales_cashier'::regclass")
                parts = len(await partitions(conn, "sales"))
            return {"applied": applied, "again": again, "valid": valid, "leaves": leaves, "parts": parts}
        finally:
            await pool.close()

    got = asyncio.run(run())
    assert got["applied"] == got["again"] == ["probe/9001_sales_by_cashier"]
    assert got["valid"] is True and got["leaves"] == got["parts"] > 4, got  # every partition's, the new ones too


def test_bounds_read_back_in_any_session_time_zone() -> None:
    """pg_get_expr writes a timestamptz bound in the session's zone: 1 February UTC is 31 January in New York,
    and must still read as February's bound (or the hub would make January again, overlapping)."""
    from hub.partitions import _bound

    assert _bound("2027-01-31 19:00:00-05") == datetime(2027, 2, 1, tzinfo=UTC)
    assert month_start(_bound("2027-01-31 19:00:00-05")).month == 2
    assert _bound(str(uuid7_floor(datetime(2027, 2, 1, tzinfo=UTC)))) == datetime(2027, 2, 1, tzinfo=UTC)


def test_sales_months_retire_old_sales_and_the_stock_ledger_stays(database_url: str) -> None:
    a = _month(datetime.now(UTC), 3)
    old, recent = sale(1, at(a.replace(day=5), 1)), sale(2, at(_month(a, 3).replace(day=5), 2))
    keep_two_months = Retention.for_stream(14, sales_months=2)

    async def run() -> dict[str, Any]:
        pool = await create_pool(database_url)
        try:
            await migrate(pool)
            await maintain(pool, keep_two_months, now=a)
            await ingest(pool, [Delivery(SUBJECT, e.encode()) for e in (old, recent)], TENANTS)
            retired = await maintain(pool, keep_two_months, now=_month(a, 4).replace(day=2))
            async with pool.acquire() as conn:
                return {"retired": retired, "sales": [row[0] for row in await conn.fetch("SELECT event_id FROM sales")],
                        "lines": await conn.fetchval("SELECT count(*) FROM sale_lines"),
                        "movements": await conn.fetchval("SELECT count(*) FROM stock_movements"),
                        "parts": [p.name for p in await partitions(conn, "sales")]}
        finally:
            await pool.close()

    got = asyncio.run(run())
    assert got["sales"] == [recent.id] and got["lines"] == 1, got  # months before two months ago are gone
    assert f"sales_p{a:%Y%m}" not in got["parts"] and f"sales_p{_month(a, 3):%Y%m}" in got["parts"]
    assert got["movements"] == 2  # the stock ledger is kept for good
