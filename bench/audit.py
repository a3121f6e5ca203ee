"""Audit benchmark: appending to a tenant's hash chain, and verifying a long one.

    python -m bench.audit [--records 1000000] [--append-seconds 5] [--writers 8]

Real parts: embedded PostgreSQL, the hub's own code (hub.audit.chain.record, hub.audit.verify.verify).
Figures:

- append_records_per_s: `--writers` connections each appending records to ONE tenant's chain, one
  transaction per record, for `--append-seconds` (they all queue on the chain's head row: this is the
  rate one tenant's privileged actions can be recorded at); append_ms median and p99 per record.
- fill_records_per_s: `--records` records of a valid chain computed in Python and written by COPY (how the
  benchmark gets a long chain quickly; not a path the hub uses).
- verify_records_per_s and verify_s: hub.audit.verify.verify over that chain (PostgreSQL streams the rows
  in seq order with their canonical encoding; Python recomputes every hash and link).
- verify_floor_records_per_s: hashing the same bytes (prev_hash || encoding) in one Python loop, the
  fetching left out: what verification cannot beat in Python; verify_ratio = verify_s / floor seconds.

Progress goes to stderr; the last line of stdout is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import logging
import platform
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg

from bench.figures import progress, ratio, summary
from hub.audit.chain import CANONICAL_SQL, GENESIS, Entry, canonical, record
from hub.audit.verify import verify
from hub.db import close_pool, create_pool, migrate
from novapos.demo.embedded_postgres import EmbeddedPostgres

COPY_CHUNK = 50_000
COLUMNS = ("tenant", "seq", "at", "actor", "action", "store", "target", "details", "prev_hash", "hash")
ACTIONS = ("price.set", "stock.adjusted", "login", "login.failed", "till.void", "till.override")


async def fill_chain(pool: asyncpg.Pool, tenant: str, count: int, *, stores: int = 50, actors: int = 200,
                     start: datetime | None = None) -> None:
    """Append `count` records to a new chain of `tenant` by COPY, their hashes computed here as record()
    would: spread over `stores` stores (every tenth record has none) and `actors` actors, one second apart."""
    at = start or datetime(2026, 1, 1, tzinfo=UTC)
    previous, seq = GENESIS, 0
    async with pool.acquire() as conn:
        while seq < count:
            rows = []
            for _ in range(min(COPY_CHUNK, count - seq)):
                seq += 1
                store = None if seq % 10 == 0 else f"store-{seq % stores:03d}"
                actor, action, target = f"user{seq % actors}", ACTIONS[seq % len(ACTIONS)], f"SKU-{seq % 9973}"
                details = f'{{"n": {seq}}}'  # jsonb's own text of {"n": seq}
                when = at + timedelta(seconds=seq)
                digest = hashlib.sha256(previous + canonical(tenant, seq, when, actor, action, store, target,
                                                             details)).digest()
                rows.append((tenant, seq, when, actor, action, store, target, details, previous, digest))
                previous = digest
            await conn.copy_records_to_table("audit_records", records=rows, columns=COLUMNS)
            if seq % 200_000 < COPY_CHUNK:
                progress(f"filled {seq:,} of {count:,} records")
        await conn.execute("INSERT INTO audit_heads (tenant, seq, hash) VALUES ($1, $2, $3)"
                           " ON CONFLICT (tenant) DO UPDATE SET seq = excluded.seq, hash = excluded.hash",
                           tenant, seq, previous)
        await conn.execute("ANALYZE audit_records")


async def append_figures(pool: asyncpg.Pool, writers: int, seconds: float) -> dict[str, float]:
    timings: list[float] = []
    deadline = time.monotonic() + seconds

    async def writer(number: int) -> None:
        async with pool.acquire() as conn:
            while time.monotonic() < deadline:
                started = time.perf_counter()
                await record(conn, Entry("append", f"user{number}", "price.set", store="store-001", target="SKU-1",
                                         details={"price": 499}))
                timings.append(time.perf_counter() - started)
    started = time.perf_counter()
    await asyncio.gather(*(writer(number) for number in range(writers)))
    elapsed = time.perf_counter() - started
    times = summary(timings)
    return {"append_records_per_s": round(len(timings) / elapsed), "append_ms_median": times["median"],
            "append_ms_p99": times["p99"], "appended": len(timings)}


async def floor_seconds(pool: asyncpg.Pool, tenant: str) -> float:
    """Hashing the same bytes verify hashes, in one Python loop per chunk, timed without the fetching."""
    spent, last = 0.0, 0
    sql = (f"SELECT seq, prev_hash || {CANONICAL_SQL} AS hashed FROM audit_records WHERE tenant = $1 AND seq > $2"
           " ORDER BY seq LIMIT 50000")
    async with pool.acquire() as conn:
        while rows := await conn.fetch(sql, tenant, last):
            data = [row[1] for row in rows]
            last = rows[-1][0]
            sha256 = hashlib.sha256
            started = time.perf_counter()
            for item in data:
                sha256(item).digest()
            spent += time.perf_counter() - started
    return spent


async def main(url: str, records: int, writers: int, seconds: float) -> dict[str, object]:
    pool = await create_pool(url, max_size=writers + 1)
    try:
        await migrate(pool)
        progress(f"appending: {writers} writers on one tenant's chain for {seconds:.0f} s")
        appended = await append_figures(pool, writers, seconds)
        assert (await verify(pool, "append", None)).ok
        progress(f"filling a chain of {records:,} records by COPY")
        started = time.perf_counter()
        await fill_chain(pool, "bench", records)
        filled = time.perf_counter() - started
        progress("verifying it")
        started = time.perf_counter()
        verdict = await verify(pool, "bench", None,
                               progress=lambda done, total: progress(f"verified {done:,} of {total:,}")
                               if done % 200_000 < 20_000 else None)
        verify_s = time.perf_counter() - started
        if not verdict.ok or verdict.length != records:
            raise SystemExit(f"the benchmark's chain did not verify: {verdict.sentence()}")
        progress("hashing the same bytes in one loop (the floor)")
        floor = await floor_seconds(pool, "bench")
    finally:
        await close_pool(pool)
    return {**appended, "writers": writers, "records": records,
            "fill_records_per_s": round(records / filled),
            "verify_records_per_s": round(records / verify_s), "verify_s": round(verify_s, 2),
            "verify_floor_records_per_s": round(records / floor), "verify_floor_s": round(floor, 2),
            "verify_ratio": ratio(verify_s, floor), "python": platform.python_version()}


def run(records: int, writers: int, seconds: float) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="novapos-bench-audit-") as folder:
        state = Path(folder)
        state.chmod(0o755)
        with EmbeddedPostgres(state / "pg") as postgres:
            return asyncio.run(main(postgres.url(), records, writers, seconds))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--writers", type=int, default=8)
    parser.add_argument("--append-seconds", type=float, default=5.0)
    arguments = parser.parse_args()
    logging.basicConfig(level=logging.ERROR, force=True)
    print(json.dumps(run(arguments.records, arguments.writers, arguments.append_seconds)))
