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

import hub.partitions
from hub.db import create_pool, migrate
from hub.domains import Domain, domains
from hub.ingest.inbox import Delivery, ingest
from hub.partitions import KEYS, LATEST, Retention, _bound, maintain, month_start, next_month, partitions, uuid7_floor
from novapos.config.hub import INBOX_MARGIN_DAYS, LEAF_STREAM_MAX_AGE_DAYS, load_hub
from novapos.config.reading import ConfigError
from novapos.wire.envelope import Envelope
from tests.events import SUBJECT, sale_event
from tests.older_schema import migrate_below

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


def test_rows_before_the_migration_stay_and_new_rows_land_in_their_month(empty_database_url: str) -> None:
    now = datetime.now(UTC)
    before = [sale(seq, at(now - timedelta(days=seq), seq)) for seq in range(1, 4)]
    ahead = _month(now, 3).replace(day=15)  # past 0200's bound (the month after next), in a month made ahead
    later = sale(10, at(ahead, 1))
    far = sale(11, at(now + timedelta(days=800), 1))  # a store clock two years ahead: the default partition

    async def run() -> dict[str, Any]:
        pool = await create_pool(empty_database_url)
        try:
            async with pool.acquire() as conn:  # the release before: every migration below 0200
                await migrate_below(conn, 200)
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
    assert got["made"] == len(KEYS) * 2, got["made"]  # the two months from 0200's bound up to three months ahead
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
            async with pool.acquire() as conn:
                before = [p.name for p in await partitions(conn, "inbox")]
            retired = await maintain(pool, retention, now=now)
            async with pool.acquire() as conn:
                after = [p.name for p in await partitions(conn, "inbox")]
                kept = {row[0] for row in await conn.fetch("SELECT event_id FROM inbox")}
                newest_gone = await conn.fetchval("SELECT max(received_at) FROM sales WHERE NOT event_id = ANY($1)",
                                                  list(kept))
            replay = await ingest(pool, [Delivery(SUBJECT, e.encode()) for e in (*events, late)], TENANTS)
            async with pool.acquire() as conn:
                counts = await _counts(conn)
            return {"result": result, "before": before, "after": after, "retired": retired, "kept": kept, "replay": replay,
                    "counts": counts, "newest_gone": newest_gone}
        finally:
            await pool.close()

    got = asyncio.run(run())
    assert got["result"].applied == 7
    after = got["after"]
    assert f"inbox_p{a:%Y%m}" in after and f"inbox_p{b:%Y%m}" not in after, after
    assert f"inbox_p{c:%Y%m}" in after and "inbox_legacy" not in after, after
    # retired: the legacy partition, the month of 0200's bound and B's (A's is kept for its late event); made: the
    # three months after D, for each of the five tables
    bound_month = month_start(a - timedelta(days=1))  # 0200's bound: the month after next, the one before A
    assert set(got["before"]) - set(after) == {"inbox_legacy", f"inbox_p{bound_month:%Y%m}", f"inbox_p{b:%Y%m}"}
    assert got["retired"] == 3 + 3 * len(KEYS), got["retired"]
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
    with pytest.raises(ValueError, match="at least 14 days"):
        Retention.for_stream(14, inbox_days=14 + INBOX_MARGIN_DAYS - 1)
    config = tmp_path / "hub.toml"
    config.write_text("[stream]\nmax_age_days = 30\n[retention]\ninbox_days = 36\nsales_months = 24\n")
    with pytest.raises(ConfigError, match=r"\[retention\] inbox_days must be at least \[stream\] max_age_days \(30\)"):
        load_hub(config)
    config.write_text("[stream]\nmax_age_days = 30\n[retention]\ninbox_days = 37\nsales_months = 24\n")
    assert Retention.of(load_hub(config), leaf=False) == Retention(37, 24, 3)
    config.write_text("[stream]\nmax_age_days = 30\n")
    assert Retention.of(load_hub(config), leaf=False).inbox_days == 61


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


def _set_zone(database_url: str, zone: str) -> None:
    async def run() -> None:
        conn = await asyncpg.connect(database_url)
        try:
            await conn.execute(f"DO $$ BEGIN EXECUTE format('ALTER DATABASE %I SET timezone = %L', current_database(),"
                               f" '{zone}'); END $$")
        finally:
            await conn.close()
    asyncio.run(run())


@pytest.mark.parametrize("zone", ["Europe/Berlin", "America/New_York"])
def test_upkeep_works_whatever_the_server_time_zone(database_url: str, zone: str) -> None:
    """Every month boundary is UTC's, on a server in any time zone: 0200/0204's bound is a month's first instant in
    UTC, the months made after it fit against it, and a sale lands in its month."""
    _set_zone(database_url, zone)
    now = datetime.now(UTC)
    ahead = sale(1, at(_month(now, 2).replace(day=1), 1))  # the first millisecond of 0200's bound month

    async def run() -> dict[str, Any]:
        pool = await create_pool(database_url)
        try:
            await migrate(pool)
            made = await maintain(pool, Retention.for_stream(14))
            await ingest(pool, [Delivery(SUBJECT, ahead.encode())], TENANTS)
            async with pool.acquire() as conn:
                session_zone = await conn.fetchval("SHOW timezone")
                parts = {table: await partitions(conn, table) for table in KEYS}
                home = await _home(conn, "sales", ahead.id)
            return {"zone": session_zone, "made": made, "parts": parts, "home": home}
        finally:
            await pool.close()

    got = asyncio.run(run())
    assert got["zone"] == zone
    assert got["made"] == 2 * len(KEYS), got["made"]
    for table, parts in got["parts"].items():
        bounds = [bound for p in parts for bound in (p.low, p.high) if bound is not None]
        assert bounds and all(b == _month(b, 0) for b in bounds), (table, bounds)
        assert parts[0].name == f"{table}_legacy" and parts[0].high == _month(now, 2), (table, parts[0])
    assert got["home"] == f"sales_p{_month(now, 2):%Y%m}"


def test_a_legacy_bound_off_a_month_start_is_followed_without_overlap(database_url: str) -> None:
    """A database migrated by the release that computed the bound in the server's zone (Berlin: an hour before the
    month in UTC): the first month made starts at that bound, not at its month's first instant (an overlap)."""
    async def run() -> dict[str, Any]:
        pool = await create_pool(database_url)
        try:
            await migrate(pool)
            async with pool.acquire() as conn:
                for table, key in KEYS.items():
                    [legacy] = [p for p in await partitions(conn, table) if p.name.endswith("_legacy")]
                    assert legacy.high is not None
                    shifted = legacy.high - timedelta(hours=1)
                    bound = uuid7_floor(shifted) if key == "event_id" else shifted.isoformat()
                    await conn.execute(f"ALTER TABLE {table} DETACH PARTITION {table}_legacy")
                    await conn.execute(f"ALTER TABLE {table} ATTACH PARTITION {table}_legacy"
                                       f" FOR VALUES FROM (MINVALUE) TO ('{bound}')")
            made = await maintain(pool, Retention.for_stream(14))
            async with pool.acquire() as conn:
                parts = {table: await partitions(conn, table) for table in KEYS}
            return {"made": made, "parts": parts}
        finally:
            await pool.close()

    got = asyncio.run(run())
    assert got["made"] == 3 * len(KEYS), got["made"]  # the hour before the bound's month, then two months
    for table, parts in got["parts"].items():
        legacy, first, second = parts[0], parts[1], parts[2]
        assert first.low == legacy.high and first.high == second.low == _month(datetime.now(UTC), 2), (table, parts)


def test_an_outlier_id_held_before_partitioning_does_not_push_the_bound_out(empty_database_url: str) -> None:
    """A store clock years ahead, an id whose time is past the year 9999: held before 0200, they are moved aside
    and put back through the partitioned tables (their default partition); the bound stays the month after next,
    months are made after it, and nothing is lost."""
    now = datetime.now(UTC)
    usual = sale(1, at(now, 1))
    ahead = sale(2, at(now + timedelta(days=800), 2))
    beyond = sale(3, uuid.UUID("ffffffff-ffff-7fff-bfff-ffffffffffff"))

    async def run() -> dict[str, Any]:
        pool = await create_pool(empty_database_url)
        try:
            async with pool.acquire() as conn:
                await migrate_below(conn, 200)
            await ingest(pool, [Delivery(SUBJECT, e.encode()) for e in (usual, ahead, beyond)], TENANTS)
            async with pool.acquire() as conn:
                before = await _counts(conn)
            await migrate(pool)
            made = await maintain(pool, Retention.for_stream(14))
            async with pool.acquire() as conn:
                homes = {table: [await _home(conn, table, e.id) for e in (usual, ahead, beyond)]
                         for table in ("inbox", "sales", "sale_lines", "sale_tenders")}
                legacy = {table: next(p.high for p in await partitions(conn, table) if p.name.endswith("_legacy"))
                          for table in ("inbox", "sales", "sale_lines", "sale_tenders")}
                after = await _counts(conn)
                held = await conn.fetchval("SELECT count(*) FROM pg_class WHERE relname LIKE 'partition_held_%'")
            again = await ingest(pool, [Delivery(SUBJECT, e.encode()) for e in (usual, ahead, beyond)], TENANTS)
            return {"before": before, "after": after, "made": made, "homes": homes, "legacy": legacy, "held": held,
                    "again": again}
        finally:
            await pool.close()

    got = asyncio.run(run())
    assert got["before"] == got["after"] == {"inbox": 3, "sales": 3, "sale_lines": 3, "sale_tenders": 3}
    assert set(got["legacy"].values()) == {_month(now, 2)}, got["legacy"]
    assert got["made"] == 2 * len(KEYS) and got["held"] == 0, got
    for table, homes in got["homes"].items():
        assert homes == [f"{table}_legacy", f"{table}_default", f"{table}_default"], (table, homes)
    assert (got["again"].applied, got["again"].duplicates) == (0, 3)
    assert _bound("ffffffff-ffff-7fff-bfff-ffffffffffff") == LATEST
    assert _bound("infinity") == LATEST and _bound("not a bound") == LATEST


def test_a_row_written_into_the_default_partition_while_a_month_is_made_is_taken_over(database_url: str) -> None:
    """A transaction writing into the default partition, in the range of a month about to be made, commits while the
    month is made: the make waits for it (the table is locked first) and takes the row over, instead of ATTACH
    failing on it. And one table's failing step (a stray table in the way of sale_tenders' month) stops
    neither the other tables nor the round."""
    now = datetime.now(UTC)
    first = _month(now, 2)  # 0200's bound: the first month maintain makes
    late = at(first.replace(day=3), 9)

    async def run() -> dict[str, Any]:
        pool = await create_pool(database_url)
        try:
            await migrate(pool)
            async with pool.acquire() as conn:
                await conn.execute(f"CREATE TABLE sale_tenders_p{first:%Y%m} (stray int)")
            writer = await asyncpg.connect(database_url)
            try:
                await writer.execute("BEGIN")
                await writer.execute("INSERT INTO inbox (event_id, tenant, store, seq, type) VALUES ($1, 'demo',"
                                     " 'store-001', 1, 'sale.completed')", late)
                maintaining = asyncio.ensure_future(maintain(pool, Retention.for_stream(14)))
                await asyncio.sleep(0.3)
                await writer.execute("COMMIT")
                made = await maintaining
            finally:
                await writer.close()
            async with pool.acquire() as conn:
                home = await conn.fetchval("SELECT tableoid::regclass::text FROM inbox WHERE event_id = $1", late)
                parts = {table: [p.name for p in await partitions(conn, table)] for table in KEYS}
            return {"made": made, "home": home, "parts": parts}
        finally:
            await pool.close()

    got = asyncio.run(run())
    assert got["home"] == f"inbox_p{first:%Y%m}", got
    assert got["made"] == 2 * (len(KEYS) - 1), got  # every table's two months but sale_tenders'
    assert f"sale_tenders_p{first:%Y%m}" not in got["parts"]["sale_tenders"]
    assert f"stock_movements_p{first:%Y%m}" in got["parts"]["stock_movements"]


def test_a_late_event_written_while_its_month_is_retired_keeps_the_month(database_url: str) -> None:
    """The inbox month's recent-rows check and its DROP are one locked step: an event received late into a month
    past retention, committed while the month is being retired, keeps the month (the stream may redeliver it)."""
    a = _month(datetime.now(UTC), 3)
    later = _month(a, 3).replace(day=25)
    retention = Retention.for_stream(14)  # 45 days: A's month is past it on `later`
    late = at(a.replace(day=11), 7)

    async def run() -> dict[str, Any]:
        pool = await create_pool(database_url)
        try:
            await migrate(pool)
            await maintain(pool, retention, now=a)  # every month up to `later`'s
            # the months before A retired first: A's is the first the next round drops (none waits before it)
            await maintain(pool, retention, now=_month(a, 1).replace(day=20))  # 45 days: to A's 6th
            writer = await asyncpg.connect(database_url)
            try:
                await writer.execute("BEGIN")
                await writer.execute("INSERT INTO inbox (event_id, tenant, store, seq, type, received_at) VALUES"
                                     " ($1, 'demo', 'store-001', 7, 'sale.completed', $2)", late,
                                     later - timedelta(days=1))
                retiring = asyncio.ensure_future(maintain(pool, retention, now=later))
                await asyncio.sleep(0.3)
                await writer.execute("COMMIT")
                await retiring
            finally:
                await writer.close()
            async with pool.acquire() as conn:
                parts = [p.name for p in await partitions(conn, "inbox")]
                kept = await conn.fetchval("SELECT count(*) FROM inbox WHERE event_id = $1", late)
            return {"parts": parts, "kept": kept}
        finally:
            await pool.close()

    got = asyncio.run(run())
    assert got["kept"] == 1 and f"inbox_p{a:%Y%m}" in got["parts"], got


def test_leaf_stores_make_the_inbox_outlast_their_local_streams(tmp_path: Path) -> None:
    """While a store is flagged as running a leaf node the hub's stream may source its local stream again from its
    start (30 days): the inbox's floor is the longer of the two plus the margin (hub.partitions.maintain_for reads
    the flag each round: tests/test_leaf_flag.py)."""
    least = LEAF_STREAM_MAX_AGE_DAYS + INBOX_MARGIN_DAYS
    assert Retention.for_stream(14, leaf=True).inbox_days == LEAF_STREAM_MAX_AGE_DAYS + 31
    with pytest.raises(ValueError, match=f"= {least}"):
        Retention.for_stream(14, inbox_days=least - 1, leaf=True)
    config = tmp_path / "hub.toml"
    config.write_text(f"[stream]\nmax_age_days = 14\n[retention]\ninbox_days = {least - 1}\n")
    assert Retention.of(load_hub(config), leaf=False).inbox_days == least - 1
    with pytest.raises(ValueError, match=f"leaf streams.*= {least}"):
        Retention.of(load_hub(config), leaf=True)
    config.write_text("[stream]\nmax_age_days = 14\n")
    assert Retention.of(load_hub(config), leaf=True).inbox_days == LEAF_STREAM_MAX_AGE_DAYS + 31
    config.write_text("[stream]\nmax_age_days = 14\n[retention]\ninbox_days = 21\n")
    assert Retention.of(load_hub(config), leaf=False).inbox_days == 21


def test_the_inbox_retire_check_reads_the_months_brin_index(database_url: str) -> None:
    """Every partition of the inbox (legacy, months, default) carries the BRIN index on received_at (migration 0214),
    and the check that keeps a month with a late event reads it, not the month (measured at a million rows: 179 ms
    scanning, 0.3 ms through the index)."""
    async def run() -> dict[str, Any]:
        pool = await create_pool(database_url)
        try:
            await migrate(pool)
            await maintain(pool, Retention.for_stream(14))
            async with pool.acquire() as conn:
                month = next(p for p in await partitions(conn, "inbox") if p.name.startswith("inbox_p"))
                assert month.low is not None and month.high is not None
                await conn.execute(
                    "INSERT INTO inbox (event_id, tenant, store, seq, type, received_at)"
                    " SELECT uuid7_floor($1::timestamptz + n * interval '20 seconds'), 'demo', 's', n, 'sale',"
                    " $1::timestamptz + n * interval '20 seconds' FROM generate_series(1, 50000) AS n", month.low)
                await conn.execute("ANALYZE inbox")
                indexed = dict(await conn.fetch(
                    "SELECT c.relname, EXISTS (SELECT FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid"
                    " JOIN pg_am a ON a.oid = i.relam WHERE x.indrelid = c.oid AND a.amname = 'brin')"
                    " FROM pg_inherits h JOIN pg_class c ON c.oid = h.inhrelid WHERE h.inhparent = 'inbox'::regclass"))
                plan = "\n".join(row[0] for row in await conn.fetch(
                    f"EXPLAIN {hub.partitions.RECENT_SQL.format(partition=month.name)}", month.high + timedelta(days=40)))
            return {"indexed": indexed, "plan": plan, "month": month.name}
        finally:
            await pool.close()

    got = asyncio.run(run())
    assert got["indexed"] and all(got["indexed"].values()), got["indexed"]
    assert {"inbox_legacy", "inbox_default", got["month"]} <= set(got["indexed"])
    assert f"Bitmap Index Scan on {got['month']}_received_at_idx" in got["plan"], got["plan"]  # named by ATTACH
