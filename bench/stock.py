"""Stock benchmark: what moving stock adds to ingest, and how fast a till learns an item's stock.

    python -m bench.stock [--sales 20000] [--asks 1000]

Real parts throughout: embedded PostgreSQL and NATS, the hub's own code. Figures:

- stock_apply_lines_per_s: sales of 3 lines each (over 4 stores and 1,000 SKUs) applied by the inventory
  domain's sale.completed applier in batches of BATCH events, one transaction each (as the inbox runs it):
  locations and SKUs resolved, balances upserted in (location, sku) order, movements copied.
- stock_apply_2_lines_per_s: the same with two connections applying interleaved batches of the same stores
  and SKUs side by side (as two hub processes do); `deadlocks` counts the batches PostgreSQL had to abort.
- copy_floor_lines_per_s: the same movement rows written by raw COPY into a scratch table of the ledger's
  shape (its indexes included), in the same batches: what PostgreSQL alone costs; `apply_to_floor_ratio`
  compares the two.
- stock_ask_ms: a till's question (novapos.<tenant>.<store>.req.stock) answered by a running hub, median
  and p99, beside nats_echo_floor_ms: a request/reply on the same NATS answered by a bare responder.
- ledger_mismatches: balances the ledger does not replay to after all of it (must be 0).

Progress goes to stderr; the last line of stdout is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import platform
import random
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import nats
import trio

from bench.figures import progress, ratio, summary
from hub.app import run_hub
from hub.db import create_pool, migrate
from hub.inventory.ledger import MOVEMENT_COLUMNS
from hub.inventory.sales import move_sold_stock
from novapos.config import AuditSettings, HubConfig
from novapos.demo.embedded_nats import EmbeddedNats
from novapos.demo.embedded_postgres import EmbeddedPostgres
from novapos.wire.envelope import Envelope
from novapos.wire.stock import decode_answer, encode_request, stock_request_subject

BATCH = 256
STORES = 4
SKUS = 1000
LEDGER_MISMATCH_SQL = (
    "SELECT count(*) FROM stock_balances b FULL JOIN (SELECT location_id, sku, sum(on_hand_change) AS on_hand,"
    " sum(reserved_change) AS reserved FROM stock_movements WHERE location_id IS NOT NULL GROUP BY 1, 2) m"
    " ON (m.location_id, m.sku) = (b.location_id, b.sku)"
    " WHERE coalesce(b.on_hand, 0) <> coalesce(m.on_hand, 0) OR coalesce(b.reserved, 0) <> coalesce(m.reserved, 0)")


def world_sql() -> str:
    stores = ", ".join(f"('demo', 'store-{n}', 'north', 'Store {n}')" for n in range(STORES))
    floors = ", ".join(f"('demo', 'floor-{n}', 'floor', 'store-{n}', 'north', 'Floor {n}')" for n in range(STORES))
    variants = ", ".join(f"('demo', 'SKU-{n}', 'p', 'Item {n}', 1)" for n in range(SKUS))
    return (
        "INSERT INTO tenants (tenant, name, currency) VALUES ('demo', 'Demo', 'EUR');"
        "INSERT INTO regions (tenant, region, name) VALUES ('demo', 'north', 'North');"
        f"INSERT INTO stores (tenant, store, region, name) VALUES {stores};"
        "INSERT INTO locations (tenant, location, kind, store, region, name) VALUES"
        f" {floors}, ('demo', 'wh', 'warehouse', NULL, 'north', 'Warehouse');"
        "INSERT INTO tax_classes (tenant, tax_class, name, version) VALUES ('demo', 'std', 'Standard', 1);"
        "INSERT INTO products (tenant, product, name, tax_class, version) VALUES ('demo', 'p', 'P', 'std', 1);"
        f"INSERT INTO variants (tenant, sku, product, name, version) VALUES {variants};")


def sales(count: int, rng: random.Random) -> list[Envelope]:
    euro = {"currency": "EUR"}
    made = []
    for number in range(count):
        lines = [{"sku": f"SKU-{rng.randrange(SKUS)}", "name": "Item", "quantity": 1,
                  "unit_price": {"minor": 100, **euro}, "amount": {"minor": 100, **euro}} for _ in range(3)]
        body = {"till": "till-1", "session": "s", "cashier": "bench", "currency": "EUR", "lines": lines,
                "total": {"minor": 300, **euro}, "tenders": [{"method": "cash", "amount": {"minor": 300, **euro}}],
                "change": {"minor": 0, **euro}}
        made.append(Envelope(uuid.uuid4(), "sale.completed", 1, "demo", f"store-{number % STORES}", number + 1,
                             1_700_000_000_000, body))
    return made


async def _apply(pool: asyncpg.Pool, batches: list[list[Envelope]]) -> int:
    """Apply the batches one transaction each; how many PostgreSQL aborted as deadlocked (then retried)."""
    deadlocks = 0
    async with pool.acquire() as conn:
        for batch in batches:
            while True:
                try:
                    async with conn.transaction():
                        await move_sold_stock(conn, batch)
                    break
                except asyncpg.DeadlockDetectedError:
                    deadlocks += 1
    return deadlocks


async def apply_figures(url: str, count: int) -> dict[str, Any]:
    rng = random.Random(7)
    pool = await create_pool(url, max_size=4)
    try:
        await migrate(pool)
        await pool.execute(world_sql())
        events = sales(count, rng)
        batches = [events[i:i + BATCH] for i in range(0, len(events), BATCH)]
        lines = 3 * count
        progress(f"applier: {count} sales of 3 lines, batches of {BATCH}, one connection")
        started = time.perf_counter()
        await _apply(pool, batches)
        one = time.perf_counter() - started
        progress("applier: the same again, two connections side by side")
        events = sales(count, rng)
        batches = [events[i:i + BATCH] for i in range(0, len(events), BATCH)]
        started = time.perf_counter()
        deadlocks = sum(await asyncio.gather(_apply(pool, batches[0::2]), _apply(pool, batches[1::2])))
        two = time.perf_counter() - started
        mismatches = await pool.fetchval(LEDGER_MISMATCH_SQL)
        progress("floor: the same movement rows by raw COPY")
        await pool.execute("CREATE TABLE scratch_movements (LIKE stock_movements INCLUDING ALL)")
        floors = await pool.fetch("SELECT store, id FROM locations WHERE kind = 'floor'")
        floor_of = {row["store"]: row["id"] for row in floors}
        rows: list[list[tuple[Any, ...]]] = [[("demo", floor_of[e.store], line["sku"], "sale", -1, 0, None, e.store, e.id, number, None, None, [])
                 for e in batch for number, line in enumerate(e.body["lines"], 1)] for batch in batches]
        async with pool.acquire() as conn:
            started = time.perf_counter()
            for records in rows:
                async with conn.transaction():
                    await conn.copy_records_to_table("scratch_movements", records=records, columns=MOVEMENT_COLUMNS)
            floor = time.perf_counter() - started
    finally:
        await pool.close()
    return {"stock_apply_lines_per_s": round(lines / one), "stock_apply_2_lines_per_s": round(lines / two),
            "deadlocks": deadlocks, "copy_floor_lines_per_s": round(lines / floor),
            "apply_to_floor_ratio": ratio(floor, one), "ledger_mismatches": mismatches}


async def ask_figures(server: EmbeddedNats, asks: int) -> dict[str, Any]:
    """(asyncio) A till's questions to the running hub, then the same number to a bare echo responder."""
    client = await nats.connect(server.url, **server.client_options())
    try:
        subject = stock_request_subject("demo", "store-0")
        for _ in range(200):  # until the hub's responder is subscribed
            try:
                await client.request(subject, encode_request("SKU-1"), timeout=1)
                break
            except nats.errors.NoRespondersError:
                await asyncio.sleep(0.05)
        timings = []
        for number in range(asks):
            started = time.perf_counter()
            reply = await client.request(subject, encode_request(f"SKU-{number % SKUS}"), timeout=2)
            timings.append(time.perf_counter() - started)
        answer = decode_answer(reply.data)
        assert answer.error is None and len(answer.locations) == STORES + 1, answer

        async def echo(message: Any) -> None:
            await message.respond(message.data)
        await client.subscribe("bench.echo", cb=echo)
        echoes = []
        for _ in range(asks):
            started = time.perf_counter()
            await client.request("bench.echo", encode_request("SKU-1"), timeout=2)
            echoes.append(time.perf_counter() - started)
    finally:
        await client.close()
    return {"stock_ask_ms": summary(timings), "nats_echo_floor_ms": summary(echoes)}


async def main(count: int, asks: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="novapos-bench-stock-") as folder:
        state = Path(folder)
        state.chmod(0o755)
        with EmbeddedNats(state / "nats") as nats_server, EmbeddedPostgres(state / "pg") as postgres:
            url = postgres.url()
            applied = await trio.to_thread.run_sync(asyncio.run, apply_figures(url, count))
            progress(f"asking: {asks} stock questions to a running hub, then {asks} bare NATS echoes")
            config = HubConfig(tenants=("demo",), http_port=0, nats_url=nats_server.url, database_url=url,
                               tls=nats_server.tls_settings(),
                               audit=AuditSettings(checkpoint_dir=state / "audit-checkpoints"))
            async with trio.open_nursery() as nursery:
                await nursery.start(run_hub, config)
                asked = await trio.to_thread.run_sync(asyncio.run, ask_figures(nats_server, asks))
                nursery.cancel_scope.cancel()
    return {**applied, **asked, "sales": count, "lines_per_sale": 3, "batch": BATCH, "skus": SKUS,
            "python": platform.python_version()}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sales", type=int, default=20000)
    parser.add_argument("--asks", type=int, default=1000)
    arguments = parser.parse_args()
    logging.basicConfig(level=logging.ERROR, force=True)
    print(json.dumps(trio.run(main, arguments.sales, arguments.asks)))
