"""The audit log partitioned by month (migrations 0210-0213, hub.partitions): records already there stay, in
audit_records_legacy, and the chain verifies across the legacy partition, a month's and the default one, against a
checkpoint signed before the migration; new records land in their month's partition; the upkeep makes the audit
table's months ahead and retires none; and with a key that no longer says (tenant, seq) is unique, writers racing
on one tenant still never share a seq (the chain's head row serialises them)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from hub.audit.chain import Entry, record
from hub.audit.checkpoints import Checkpoint
from hub.audit.verify import checkpoint_now, verify
from hub.db import close_pool, create_pool, migrate
from hub.partitions import Retention, maintain, partitions
from tests.audit_support import run
from tests.older_schema import migrate_below


async def _clock(conn: asyncpg.Connection, ahead: timedelta) -> None:
    """The hub's clock `ahead` for the records written from now on (recorded_at's default)."""
    await conn.execute(f"ALTER TABLE audit_records ALTER COLUMN recorded_at SET DEFAULT now() + interval"
                       f" '{int(ahead.total_seconds())} seconds'")


async def _homes(conn: asyncpg.Connection) -> dict[int, str]:
    return {row[0]: row[1] for row in await conn.fetch(
        "SELECT seq, tableoid::regclass::text FROM audit_records WHERE tenant = 'demo' ORDER BY seq")}


def test_old_records_stay_new_ones_land_in_their_month_and_the_chain_verifies_across_them(
        empty_database_url: str, tmp_path: Path) -> None:
    now = datetime.now(UTC)
    soon, far = now + timedelta(days=100), now + timedelta(days=800)  # past 0211's bound (the month after next)
    folder, key = tmp_path / "checkpoints", tmp_path / "hub.key"

    async def scenario() -> dict[str, Any]:
        pool = await create_pool(empty_database_url)
        try:
            async with pool.acquire() as conn:  # the release before: every migration below 0210
                await migrate_below(conn, 210)
                for n in range(5):
                    await record(conn, Entry("demo", "ada", "customer.updated", target=f"c{n}",
                                             details={"email": f"c{n}@example.com"}))
            signed = await checkpoint_now(pool, "demo", folder, key)
            applied = await migrate(pool)
            made = await maintain(pool, Retention.for_stream(14), now=soon)
            async with pool.acquire() as conn:
                await record(conn, Entry("demo", "ada", "price.set", target="SKU-1"))  # the legacy range still
                await _clock(conn, soon - now)
                await record(conn, Entry("demo", "ada", "price.set", target="SKU-2", details={"email": "x@y.z"}))
                await _clock(conn, far - now)
                await record(conn, Entry("demo", "ada", "price.set", target="SKU-3"))
                homes = await _homes(conn)
                personal = await conn.fetchval("SELECT count(*) FROM audit_personal WHERE tenant = 'demo'")
                refused = []
                for sql in (f"TRUNCATE {homes[7]}", f"DELETE FROM {homes[7]}", f"UPDATE {homes[8]} SET actor = 'eve'",
                            "DELETE FROM audit_records_legacy WHERE seq = 1"):
                    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
                        await conn.execute(sql)
                    refused.append(sql)
            across = await verify(pool, "demo", folder)
            # two years on, the far record's month is made (it is taken over from the default partition), and a
            # short sales retention retires no audit month
            moved = await maintain(pool, Retention.for_stream(14, sales_months=1), now=far - timedelta(days=60))
            async with pool.acquire() as conn:
                later_homes = await _homes(conn)
                names = [p.name for p in await partitions(conn, "audit_records")]
            after = await verify(pool, "demo", folder)
            return {"signed": signed, "applied": applied, "made": made, "homes": homes, "personal": personal,
                    "refused": refused, "across": across, "moved": moved, "later_homes": later_homes, "names": names,
                    "after": after}
        finally:
            await close_pool(pool)

    got = asyncio.run(scenario())
    assert isinstance(got["signed"], Checkpoint) and got["signed"].length == 5
    assert "audit/0213_audit_records_by_month" in got["applied"], got["applied"]
    assert got["made"] > 0
    assert [got["homes"][seq] for seq in range(1, 9)] == ["audit_records_legacy"] * 6 + [
        f"audit_records_p{soon:%Y%m}", "audit_records_default"], got["homes"]
    assert got["personal"] == 6  # a personal value of a record in a month partition: no key refuses it
    assert got["across"].ok and got["across"].length == 8, got["across"].sentence()
    assert got["across"].checkpoint is not None and got["across"].checkpoint.length == 5
    assert got["moved"] > 0 and got["later_homes"][8] == f"audit_records_p{far:%Y%m}", got["later_homes"]
    assert got["after"].ok and got["after"].length == 8, got["after"].sentence()
    assert got["names"][0] == "audit_records_legacy" and got["names"][-1] == "audit_records_default"
    assert f"audit_records_p{soon:%Y%m}" in got["names"]  # kept: no audit month is ever retired


def test_writers_racing_on_one_tenant_never_share_a_seq(database_url: str) -> None:
    """The partitioned key (tenant, seq, recorded_at) would take two records of one seq written at different times;
    the head row's lock is what keeps seqs unique: 8 writers x 25 appends each, every one in its own transaction."""
    writers, each = 8, 25

    async def scenario(pool: asyncpg.Pool) -> dict[str, Any]:
        soon = timedelta(days=100)  # past 0211's bound: a month partition, no (tenant, seq) key of the legacy one
        await maintain(pool, Retention.for_stream(14), now=datetime.now(UTC) + soon)
        async with pool.acquire() as conn:
            await _clock(conn, soon)

        async def writer(n: int) -> list[int]:
            got = []
            async with pool.acquire() as conn:
                for i in range(each):
                    async with conn.transaction():
                        got.append(await record(conn, Entry("race", f"w{n}", "login", target=str(i))))
            return got
        seqs = [seq for batch in await asyncio.gather(*(writer(n) for n in range(writers))) for seq in batch]
        async with pool.acquire() as conn:
            stored = dict(await conn.fetch("SELECT seq, tableoid::regclass::text FROM audit_records"
                                           " WHERE tenant = 'race'"))
            # what the key alone allows: the same seq written a second later, which verify names
            verdict = await verify(pool, "race", None)
            await conn.execute("INSERT INTO audit_records (tenant, seq, at, actor, action, prev_hash, hash, recorded_at)"
                               " SELECT tenant, seq, at, actor, action, prev_hash, hash, recorded_at + interval '1 s'"
                               " FROM audit_records WHERE tenant = 'race' AND seq = 1")
            twice = await conn.fetchval("SELECT count(*) FROM audit_records WHERE tenant = 'race' AND seq = 1")
        return {"seqs": seqs, "stored": stored, "twice": twice, "verdict": verdict,
                "found": await verify(pool, "race", None)}

    got = run(database_url, scenario, max_size=writers + 1)
    assert sorted(got["seqs"]) == list(range(1, writers * each + 1))
    assert sorted(got["stored"]) == list(range(1, writers * each + 1))
    assert set(got["stored"].values()) == {f"audit_records_p{datetime.now(UTC) + timedelta(days=100):%Y%m}"}
    assert got["twice"] == 2
    assert got["verdict"].ok and got["verdict"].length == writers * each, got["verdict"].sentence()
    assert got["found"].broken is not None and got["found"].broken.seq == 1, got["found"].sentence()
    assert "there twice" in got["found"].broken.why
