"""Contracts benchmark: what validating one event costs the hub, beside unpacking its bytes, and what replay
validation (each line checked against the catalog) adds to an ingest batch, beside writing its lines.

    python -m bench.contracts [--events 20000] [--rounds 7] [--skus 100000] [--batch 256]

The hub decodes and validates every event it ingests (novapos.wire.envelope.decode: the envelope, then
the body against its versioned schema). Figures, per event of 3 lines (microseconds of this process's CPU
time, so that other work on a shared machine inflates them less; median of rounds):

- decode_v1_us, decode_v2_us: decode() of a sale.completed v1 / v2 event (v2: price locks and tax).
- unpack_floor_us: msgpack.unpackb of the same v2 bytes alone, what any validation costs at least.
- decode_v2_floor_ratio: decode_v2_us over the floor.

Then on embedded PostgreSQL with a catalog of `skus` SKUs (a tenant price each, a region price for one in
ten, an older price for one in five), for batches of `batch` v2 sales of 3 random SKUs, one in ten lines
sold at a wrong price (milliseconds per batch, median of rounds, each in a rolled-back transaction):

- replay_cold_batch_ms: hub.sales.replay.validate of a batch whose SKUs the hub process has not seen at this
  catalog version (the catalog query and the SKUs query, the diffs COPY'd): a catalog just changed.
- replay_warm_batch_ms: the same batch again, its SKUs cached (the catalog query only): the steady state.
- lines_copy_floor_ms: a raw COPY of the same batch's lines into a table shaped as sale_lines.
- replay_cold_floor_ratio, replay_warm_floor_ratio: each over the floor.

Progress goes to stderr; the last line of stdout is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import random
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import msgpack

from bench.figures import progress, ratio
from hub.db import create_pool, migrate
from hub.sales import replay
from novapos.demo.embedded_postgres import EmbeddedPostgres
from novapos.pricing import line_tax
from novapos.wire.envelope import Envelope, decode
from novapos.wire.ids import uuid7

LINES = (("COF-250", "Ground coffee 250 g", 2, 499), ("MLK-1L", "Whole milk 1 l", 1, 129),
         ("BRD-500", "Sourdough loaf 500 g", 3, 350))


def _money(minor: int) -> dict[str, Any]:
    return {"minor": minor, "currency": "EUR"}


def sale(version: int, seq: int) -> bytes:
    """A sale of LINES paid in cash, as a store of that version commits it."""
    lines: list[dict[str, Any]] = []
    total = tax_total = 0
    for sku, name, quantity, unit in LINES:
        line: dict[str, Any] = {"sku": sku, "name": name, "quantity": quantity,
                                "unit_price": _money(unit), "amount": _money(unit * quantity)}
        total += unit * quantity
        if version == 2:
            tax = line_tax(unit * quantity, 200_000, True)
            tax_total += tax
            line |= {"catalog_version": 42, "tax": {"class": "standard", "rate_ppm": 200_000, "included": True,
                                                    "amount": _money(tax)}}
        lines.append(line)
    body: dict[str, Any] = {"till": "till-1", "session": "bench", "cashier": "bench", "currency": "EUR",
                            "lines": lines, "total": _money(total),
                            "tenders": [{"method": "cash", "amount": _money(total + 100)}], "change": _money(100)}
    if version == 2:
        body["tax_total"] = _money(tax_total)
    return Envelope(id=uuid7(), type="sale.completed", v=version, tenant="demo", store="store-001", seq=seq,
                    ts=1_800_000_000_000, body=body).encode()


def per_event_us(work: Callable[[bytes], object], events: list[bytes], rounds: int) -> float:
    samples = []
    for _ in range(rounds):
        started = time.process_time()
        for data in events:
            work(data)
        samples.append((time.process_time() - started) / len(events))
    return round(statistics.median(samples) * 1e6, 2)


CATALOG = """
INSERT INTO tenants (tenant, name, currency) VALUES ('demo', 'Demo', 'EUR');
INSERT INTO catalog_versions (tenant, version) VALUES ('demo', 1);
INSERT INTO regions VALUES ('demo', 'north', 'North'), ('demo', 'south', 'South');
INSERT INTO stores (tenant, store, region, name) VALUES ('demo', 'store-001', 'north', 'One');
INSERT INTO tax_classes VALUES ('demo', 'standard', 'Standard', 1);
INSERT INTO tax_rates VALUES ('demo', 'standard', 'north', 200000, 1), ('demo', 'standard', 'south', 200000, 1);
INSERT INTO products (tenant, product, name, tax_class, version)
    SELECT 'demo', 'P' || n, 'Product ' || n, 'standard', 1 FROM generate_series(0, $1 - 1) n;
INSERT INTO variants (tenant, sku, product, name, version)
    SELECT 'demo', 'SKU-' || n, 'P' || n, 'Product ' || n, 1 FROM generate_series(0, $1 - 1) n;
INSERT INTO prices (tenant, sku, scope, scope_id, effective_from, amount_minor, version)
    SELECT 'demo', 'SKU-' || n, 'tenant', '', '2025-01-01Z'::timestamptz, 100 + n % 900, 1 FROM generate_series(0, $1 - 1) n
    UNION ALL SELECT 'demo', 'SKU-' || n, 'tenant', '', '2024-01-01Z'::timestamptz, 90 + n % 900, 1
              FROM generate_series(0, $1 - 1, 5) n
    UNION ALL SELECT 'demo', 'SKU-' || n, 'region', 'north', '2025-01-01Z'::timestamptz, 95 + n % 900, 1
              FROM generate_series(0, $1 - 1, 10) n;
"""


def _unit(sku: int) -> int:
    """The price in force for store-001 (north) in the catalog above."""
    return 95 + sku % 900 if sku % 10 == 0 else 100 + sku % 900


def replay_batch(skus: int, size: int, rng: random.Random) -> list[Envelope]:
    batch = []
    for seq in range(1, size + 1):
        lines: list[dict[str, Any]] = []
        for sku in rng.sample(range(skus), 3):
            unit = _unit(sku) + (1 if rng.random() < 0.1 else 0)
            tax = line_tax(unit, 200_000, True)
            lines.append({"sku": f"SKU-{sku}", "name": "x", "quantity": 1, "unit_price": _money(unit),
                          "amount": _money(unit), "catalog_version": 1,
                          "tax": {"class": "standard", "rate_ppm": 200_000, "included": True, "amount": _money(tax)}})
        total = sum(line["amount"]["minor"] for line in lines)
        body = {"till": "till-1", "session": "bench", "cashier": "bench", "currency": "EUR", "lines": lines,
                "total": _money(total), "tenders": [{"method": "cash", "amount": _money(total)}],
                "change": _money(0), "tax_total": _money(sum(line["tax"]["amount"]["minor"] for line in lines))}
        batch.append(decode(Envelope(id=uuid7(), type="sale.completed", v=2, tenant="demo", store="store-001",
                                     seq=seq, ts=1_800_000_000_000, body=body).encode()))
    return batch


async def _rolled_back(pool: asyncpg.Pool, work: Callable[[asyncpg.Connection], Awaitable[object]]) -> float:
    async with pool.acquire() as conn:
        transaction = conn.transaction()
        await transaction.start()
        started = time.perf_counter()
        await work(conn)
        elapsed = time.perf_counter() - started
        await transaction.rollback()
    return elapsed


async def replay_figures(url: str, skus: int, size: int, rounds: int) -> dict[str, float]:
    pool = await create_pool(url)
    try:
        await migrate(pool)
        progress(f"seeding a catalog of {skus} SKUs")
        async with pool.acquire() as conn:
            for statement in CATALOG.strip().split(";\n"):
                await conn.execute(statement, skus) if "$1" in statement else await conn.execute(statement)
            await conn.execute("ANALYZE")
        rng = random.Random(7)
        colds, warms, floors = [], [], []
        for number in range(rounds):
            batch = replay_batch(skus, size, rng)
            lines = [(e.id, n, line["sku"], line["name"], line["quantity"], line["unit_price"]["minor"],
                      line["amount"]["minor"]) for e in batch for n, line in enumerate(e.body["lines"], 1)]

            async def copy_lines(conn: asyncpg.Connection, rows: list[tuple[Any, ...]] = lines) -> None:
                await conn.execute("CREATE TEMP TABLE floor_lines (LIKE sale_lines) ON COMMIT DROP")
                await conn.copy_records_to_table("floor_lines", records=rows, columns=[
                    "event_id", "line_no", "sku", "name", "quantity", "unit_price_minor", "amount_minor"])

            async def validate(conn: asyncpg.Connection, events: list[Envelope] = batch) -> None:
                await conn.execute("SET LOCAL session_replication_role = replica")  # diffs without their sales
                await replay.validate(conn, events)
            floors.append(await _rolled_back(pool, copy_lines))
            replay.forget()
            colds.append(await _rolled_back(pool, validate))
            warms.append(await _rolled_back(pool, validate))
            progress(f"  batch {number + 1}/{rounds}: replay cold {colds[-1] * 1000:.1f} ms, warm "
                     f"{warms[-1] * 1000:.1f} ms, floor {floors[-1] * 1000:.1f} ms")
    finally:
        await pool.close()
    cold, warm, floor = (statistics.median(samples) * 1000 for samples in (colds, warms, floors))
    return {"replay_cold_batch_ms": round(cold, 2), "replay_warm_batch_ms": round(warm, 2),
            "lines_copy_floor_ms": round(floor, 2), "replay_cold_floor_ratio": ratio(cold, floor),
            "replay_warm_floor_ratio": ratio(warm, floor)}


def main(events: int, rounds: int, skus: int, batch: int) -> dict[str, Any]:
    v1 = [sale(1, seq) for seq in range(1, events + 1)]
    v2 = [sale(2, seq) for seq in range(1, events + 1)]
    progress(f"decoding {events} events x {rounds} rounds, v1 then v2, then the unpack floor")
    decode_v1 = per_event_us(decode, v1, rounds)
    decode_v2 = per_event_us(decode, v2, rounds)
    floor = per_event_us(msgpack.unpackb, v2, rounds)
    with tempfile.TemporaryDirectory(prefix="novapos-bench-contracts-") as folder, \
            EmbeddedPostgres(Path(folder) / "pg") as postgres:
        replayed = asyncio.run(replay_figures(postgres.url(), skus, batch, rounds))
    return {"decode_v1_us": decode_v1, "decode_v2_us": decode_v2, "unpack_floor_us": floor,
            "decode_v2_floor_ratio": ratio(decode_v2, floor), **replayed, "events": events, "rounds": rounds,
            "skus": skus, "batch": batch, "python": platform.python_version()}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--skus", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=256)
    arguments = parser.parse_args()
    print(json.dumps(main(arguments.events, arguments.rounds, arguments.skus, arguments.batch)))
