"""The hub accepts the previous version of sale.completed while stores upgrade, keeps v2's price locks, and
checks every sold line against the catalog at the sale's time (replay validation), on real NATS and PostgreSQL."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import msgpack
import pytest
import trio

from hub.app import run_hub
from hub.db import create_pool, migrate
from hub.ingest.inbox import Delivery, ingest
from hub.sales import replay
from novapos.config import HubConfig
from novapos.demo.embedded_nats import EmbeddedNats
from novapos.pricing import line_tax
from novapos.wire.envelope import Envelope, decode
from novapos.wire.ids import uuid7
from novapos.wire.subjects import event_subject
from tests.conftest import ensure_stream, query, wait_until
from tests.console_access import sign_in_admin
from tests.events import publish

FIXTURE = Path(__file__).parent / "fixtures" / "sale_completed_v1.edge-5f96295.msgpack"
SOLD_AT = 1_796_171_261_956
"""When the fixture's first sale was made (2026-12-02): every sale of these tests is near it."""
HOUR = 3_600_000

CATALOG = f"""
INSERT INTO tenants (tenant, name, currency, prices_include_tax) VALUES ('demo', 'Demo', 'EUR', true);
INSERT INTO catalog_versions (tenant, version) VALUES ('demo', 2);
INSERT INTO regions VALUES ('demo', 'north', 'North'), ('demo', 'south', 'South');
INSERT INTO stores (tenant, store, region, name) VALUES ('demo', 'store-001', 'north', 'One'),
                                                        ('demo', 'store-002', 'south', 'Two');
INSERT INTO tax_classes VALUES ('demo', 'standard', 'Standard', 1), ('demo', 'reduced', 'Reduced', 1);
INSERT INTO tax_rates VALUES ('demo', 'standard', 'north', 200000, 1), ('demo', 'standard', 'south', 190000, 1),
                             ('demo', 'reduced', 'north', 55000, 1), ('demo', 'reduced', 'south', 55000, 1);
INSERT INTO products (tenant, product, name, tax_class, version) VALUES
    ('demo', 'coffee', 'Coffee', 'standard', 1), ('demo', 'milk', 'Milk', 'reduced', 1);
INSERT INTO variants (tenant, sku, product, name, version) VALUES
    ('demo', 'COF-250', 'coffee', 'Ground coffee 250 g', 1), ('demo', 'MLK-1L', 'milk', 'Whole milk 1 l', 1),
    ('demo', 'TEA-100', 'coffee', 'Tea (no price yet)', 1);
INSERT INTO prices (tenant, sku, scope, scope_id, effective_from, amount_minor, version) VALUES
    ('demo', 'COF-250', 'tenant', '', '2020-01-01Z', 499, 1),
    ('demo', 'COF-250', 'tenant', '', to_timestamp({(SOLD_AT + HOUR) / 1000}), 549, 2),
    ('demo', 'COF-250', 'region', 'south', '2020-01-01Z', 479, 1),
    ('demo', 'MLK-1L', 'tenant', '', '2020-01-01Z', 139, 1),
    ('demo', 'MLK-1L', 'region', 'north', '2020-01-01Z', 129, 1),
    ('demo', 'MLK-1L', 'store', 'store-002', '2020-01-01Z', 119, 1),
    ('demo', 'TEA-100', 'tenant', '', to_timestamp({(SOLD_AT + HOUR) / 1000}), 300, 2);
"""
"""COF-250 sells at 4.99 (4.79 in the south) and at 5.49 from an hour after SOLD_AT; milk at 1.29 in the north,
1.19 in store-002 (its own price), 1.39 elsewhere; TEA-100 has no price until an hour after SOLD_AT."""


def fixture_events() -> list[tuple[str, bytes]]:
    """The v1 events an edge of commit 5f96295 committed (see tests/fixtures/README.md)."""
    return [(row["subject"], row["payload"]) for row in msgpack.unpackb(FIXTURE.read_bytes())]


def _money(minor: int) -> dict[str, Any]:
    return {"minor": minor, "currency": "EUR"}


def sale(lines: list[tuple[str, int, int]], *, v: int = 2, store: str = "store-001", ts: int = SOLD_AT, seq: int = 1,
         tax: tuple[str, int, bool] = ("standard", 200_000, True)) -> Envelope:
    """A cash sale of (sku, quantity, unit price) lines; v2 lines carry the price lock `tax` (class, rate, included)."""
    body_lines = []
    total = tax_total = 0
    for sku, quantity, unit in lines:
        line: dict[str, Any] = {"sku": sku, "name": sku, "quantity": quantity, "unit_price": _money(unit),
                                "amount": _money(unit * quantity)}
        total += unit * quantity
        if v == 2:
            amount = line_tax(unit * quantity, tax[1], tax[2])
            tax_total += amount
            total += 0 if tax[2] else amount
            line |= {"catalog_version": 2, "tax": {"class": tax[0], "rate_ppm": tax[1], "included": tax[2],
                                                   "amount": _money(amount)}}
        body_lines.append(line)
    body = {"till": "till-1", "session": "s-1", "cashier": "alice", "currency": "EUR", "lines": body_lines,
            "total": _money(total), "tenders": [{"method": "cash", "amount": _money(total)}], "change": _money(0)}
    if v == 2:
        body["tax_total"] = _money(tax_total)
    event = Envelope(id=uuid7(), type="sale.completed", v=v, tenant="demo", store=store, seq=seq, ts=ts, body=body)
    return decode(event.encode())  # valid by its schema, or the test is wrong


def delivery(event: Envelope) -> Delivery:
    return Delivery(event_subject(event.tenant, event.store, event.type), event.encode())


def _on_fresh_loop(database_url: str, work: Any) -> Any:
    async def run() -> Any:
        pool = await create_pool(database_url)
        try:
            await migrate(pool)
            return await work(pool)
        finally:
            await pool.close()
    return asyncio.run(run())


async def with_catalog(database_url: str) -> None:
    async def seed(pool: asyncpg.Pool) -> None:
        await pool.execute(CATALOG)
    await trio.to_thread.run_sync(_on_fresh_loop, database_url, seed)


async def ingest_batches(database_url: str, batches: list[list[Envelope]]) -> dict[tuple[uuid.UUID, int], str]:
    """Ingest each batch in its own transaction; the diffs found, by (event id, line)."""
    async def run(pool: asyncpg.Pool) -> dict[tuple[uuid.UUID, int], str]:
        for batch in batches:
            result = await ingest(pool, [delivery(event) for event in batch], frozenset({"demo"}))
            assert result.rejected == 0 and result.applied + result.duplicates == len(batch)
        return {(row["event_id"], row["line_no"]): row["diff"]
                for row in await pool.fetch("SELECT event_id, line_no, diff FROM sale_price_diffs")}
    result: dict[tuple[uuid.UUID, int], str] = await trio.to_thread.run_sync(_on_fresh_loop, database_url, run)
    return result


@pytest.fixture
def second_database_url(postgres_server_url: str) -> Iterator[str]:
    """Another fresh database on the same server, for a second, independent run."""
    name = f"novapos_test_{uuid.uuid4().hex[:12]}"

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(postgres_server_url)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()
    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    yield f"{postgres_server_url.rpartition('/')[0]}/{name}"
    asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def test_an_older_edges_v1_events_land_beside_v2_over_nats(
        hub_config: HubConfig, nats_server: EmbeddedNats, database_url: str, http: httpx.AsyncClient) -> None:
    """The bytes an edge of 5f96295 committed, published to real JetStream, land as v1 sales (no price lock,
    checked on unit price only) while v2 sales land with theirs."""
    await with_catalog(database_url)
    old = fixture_events()
    assert [decode(payload).v for _, payload in old] == [1, 1, 1]
    new = [sale([("COF-250", 2, 499)], seq=4), sale([("MLK-1L", 1, 129)], seq=5, tax=("reduced", 55_000, True)),
           sale([("COF-250", 1, 549)], seq=6)]  # the last at a price not yet in force: one diff
    await ensure_stream(nats_server)
    await publish(nats_server, [(subject, payload, None) for subject, payload in old]
                  + [(event_subject("demo", "store-001", "sale.completed"), event.encode(), None) for event in new])
    async with trio.open_nursery() as nursery:
        hub = await nursery.start(run_hub, hub_config)
        await wait_until(lambda: _is(_count(database_url, "SELECT count(*) FROM sales"), 6))
        sales = await query(database_url, "SELECT seq, v, tax_total_minor FROM sales ORDER BY seq")
        assert [(r["seq"], r["v"], r["tax_total_minor"]) for r in sales] == [
            (1, 1, None), (2, 1, None), (3, 1, None), (4, 2, 166), (5, 2, 7), (6, 2, 91)]
        lines = await query(database_url, "SELECT s.seq, l.sku, l.quantity, l.unit_price_minor, l.catalog_version,"
                                          " l.tax_class, l.tax_rate_ppm, l.tax_included, l.tax_minor"
                                          " FROM sale_lines l JOIN sales s USING (event_id) ORDER BY s.seq, l.line_no")
        assert [tuple(r) for r in lines] == [
            (1, "COF-250", 2, 499, None, None, None, None, None), (1, "MLK-1L", 1, 129, None, None, None, None, None),
            (2, "MLK-1L", 3, 129, None, None, None, None, None), (3, "COF-250", 1, 499, None, None, None, None, None),
            (4, "COF-250", 2, 499, 2, "standard", 200_000, True, 166), (5, "MLK-1L", 1, 129, 2, "reduced", 55_000, True, 7),
            (6, "COF-250", 1, 549, 2, "standard", 200_000, True, 91)]
        assert await _count(database_url, "SELECT count(*) FROM dead_letters") == 0

        await sign_in_admin(http, hub.url, database_url)
        listed = (await http.get(f"{hub.url}/api/price-diffs")).json()
        refused = await http.get(f"{hub.url}/api/price-diffs?limit=0")
        assert [(d["seq"], d["line_no"], d["sku"], d["diff"]["differences"]) for d in listed] == [
            (6, 1, "COF-250", {"unit_price": {"till": 549, "catalog": 499}})]
        assert listed[0]["diff"]["price"] == {"scope": "tenant", "scope_id": "", "effective_from": "2020-01-01T00:00:00.000Z"}
        assert refused.status_code == 400 and "limit must be from 1 to 500" in refused.json()["error"]
        document = (await http.get(f"{hub.url}/openapi.json")).json()
        assert "/api/price-diffs" in document["paths"] and "PriceDiff" in document["components"]["schemas"]
        nursery.cancel_scope.cancel()


async def _is(count: Any, expected: int) -> bool:
    return bool(await count == expected)


async def _count(database_url: str, sql: str) -> int:
    return int((await query(database_url, sql))[0][0])


async def test_each_kind_of_difference_is_found_and_a_right_sale_has_none(database_url: str) -> None:
    await with_catalog(database_url)
    right = [sale([("COF-250", 1, 499)], seq=1, tax=("standard", 200_000, True)),
             sale([("MLK-1L", 2, 129)], seq=5, tax=("reduced", 55_000, True)),
             sale([("MLK-1L", 1, 119)], store="store-002", seq=2, tax=("reduced", 55_000, True)),
             sale([("COF-250", 1, 479)], store="store-002", seq=1, tax=("standard", 190_000, True))]
    wrong_price = sale([("COF-250", 1, 450)], seq=2)
    wrong_tax = sale([("COF-250", 1, 499)], seq=3, tax=("reduced", 55_000, False))
    unknown = sale([("NOPE-1", 1, 100), ("TEA-100", 1, 300)], seq=4)
    unknown_store = sale([("COF-250", 1, 499)], store="store-999", seq=1)
    events = [*right, wrong_price, wrong_tax, unknown, unknown_store]
    found = {key: json.loads(diff) for key, diff in (await ingest_batches(database_url, [events])).items()}
    assert {key: diff["differences"] for key, diff in found.items()} == {
        (wrong_price.id, 1): {"unit_price": {"till": 450, "catalog": 499}},
        (wrong_tax.id, 1): {"tax_class": {"till": "reduced", "catalog": "standard"},
                            "tax_rate_ppm": {"till": 55_000, "catalog": 200_000},
                            "tax_included": {"till": False, "catalog": True}},
        (unknown.id, 1): {"unknown_sku": {"till": "NOPE-1", "catalog": None}},
        (unknown.id, 2): {"no_price_in_force": {"till": 300, "catalog": None}},
        (unknown_store.id, 1): {"unknown_store": {"till": "store-999", "catalog": None},
                                "tax_rate_ppm": {"till": 200_000, "catalog": None}},
    }
    assert found[(wrong_price.id, 1)] == {
        "line": 1, "sku": "COF-250", "sold_at": "2026-12-02T00:27:41.956Z", "v": 2, "catalog_version": 2,
        "price": {"scope": "tenant", "scope_id": "", "effective_from": "2020-01-01T00:00:00.000Z"},
        "differences": {"unit_price": {"till": 450, "catalog": 499}}}
    kept = await query(database_url, "SELECT unit_price_minor FROM sale_lines WHERE event_id = $1", wrong_price.id)
    assert kept[0][0] == 450  # never silently corrected


async def test_a_price_changed_after_the_sale_is_not_a_difference(database_url: str) -> None:
    """COF-250 moves to 5.49 an hour after SOLD_AT: a sale at 4.99 before it and one at 5.49 after it are right;
    4.99 after it is the one to review."""
    await with_catalog(database_url)
    before = sale([("COF-250", 1, 499)], seq=1, ts=SOLD_AT + HOUR - 1)
    after = sale([("COF-250", 1, 549)], seq=2, ts=SOLD_AT + HOUR)
    stale = sale([("COF-250", 1, 499)], seq=3, ts=SOLD_AT + 2 * HOUR)
    found = await ingest_batches(database_url, [[before, after, stale]])
    assert list(found) == [(stale.id, 1)]
    assert json.loads(found[(stale.id, 1)])["differences"] == {"unit_price": {"till": 499, "catalog": 549}}


async def test_a_v1_sale_is_checked_on_its_unit_price_only(database_url: str) -> None:
    await with_catalog(database_url)
    right = sale([("MLK-1L", 1, 129)], v=1, seq=1)  # no tax rule to compare: none is a difference
    wrong = sale([("MLK-1L", 1, 139), ("COF-250", 1, 499)], v=1, seq=2)  # the tenant's milk price, not the north's
    found = await ingest_batches(database_url, [[right, wrong]])
    assert list(found) == [(wrong.id, 1)]
    diff = json.loads(found[(wrong.id, 1)])
    assert diff["differences"] == {"unit_price": {"till": 139, "catalog": 129}}
    assert diff["v"] == 1 and diff["catalog_version"] is None
    assert diff["price"] == {"scope": "region", "scope_id": "north", "effective_from": "2020-01-01T00:00:00.000Z"}


async def test_a_tenant_without_a_catalog_is_not_validated(database_url: str) -> None:
    """Before a tenant's catalog is on the hub, the hub is not its authority: sales land, no diff is made."""
    found = await ingest_batches(database_url, [[sale([("ANY-1", 1, 100)], v=1), sale([("ANY-2", 1, 7)], seq=2)]])
    assert found == {}
    assert await _count(database_url, "SELECT count(*) FROM sales") == 2


async def test_a_replay_diff_is_the_same_bytes_on_every_run(database_url: str, second_database_url: str) -> None:
    """The same sales meeting the same catalog give byte-identical diffs, whatever the batching, order or hub."""
    events = [sale([("COF-250", 1, 450), ("NOPE-1", 2, 10), ("MLK-1L", 1, 129)], seq=1,
                   tax=("standard", 190_000, False)),
              sale([("TEA-100", 3, 300)], v=1, seq=2, ts=SOLD_AT - 5),
              sale([("COF-250", 1, 499)], store="store-002", seq=1, tax=("standard", 200_000, True))]
    await with_catalog(database_url)
    await with_catalog(second_database_url)
    first = await ingest_batches(database_url, [events])
    second = await ingest_batches(second_database_url, [[event] for event in reversed(events)])
    assert len(first) == 5 and first == second
    for diff in first.values():  # canonical: sorted keys, no spaces
        assert diff == json.dumps(json.loads(diff), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    again = await ingest_batches(database_url, [events])  # a replay of the same events changes nothing
    assert again == first


def test_the_fixture_is_what_an_older_edge_sent() -> None:
    """The fixture's bytes decode as the v1 they were (and stay valid under today's v1 contract)."""
    decoded = [decode(payload) for _, payload in fixture_events()]
    assert [(e.v, e.seq, e.store) for e in decoded] == [(1, 1, "store-001"), (1, 2, "store-001"), (1, 3, "store-001")]
    assert all("tax" not in line for e in decoded for line in e.body["lines"])
    assert datetime.fromtimestamp(decoded[0].ts / 1000, tz=UTC).date().isoformat() == "2026-12-02"
    assert dataclasses.replace(decoded[0]).encode() == fixture_events()[0][1]


async def test_a_catalog_change_is_seen_by_the_next_batch(database_url: str) -> None:
    """SKUs are cached per hub process by catalog version: a change (which bumps the version and stamps the
    variants it touched) is seen by the next batch, and only the touched SKUs are read again."""
    await with_catalog(database_url)
    first = [sale([("COF-250", 1, 499)], seq=1), sale([("MLK-1L", 1, 129)], seq=2, tax=("reduced", 55_000, True))]
    assert await ingest_batches(database_url, [first]) == {}
    milk = replay._cached["demo"].skus["MLK-1L"]
    await query(database_url, "UPDATE prices SET amount_minor = 450 WHERE sku = 'COF-250' AND scope = 'tenant'"
                              " AND effective_from = '2020-01-01Z'")
    await query(database_url, "UPDATE variants SET version = 3 WHERE sku = 'COF-250'")
    await query(database_url, "UPDATE catalog_versions SET version = 3, changed_at = clock_timestamp()")
    later = [sale([("COF-250", 1, 499)], seq=3), sale([("MLK-1L", 1, 129)], seq=4, tax=("reduced", 55_000, True))]
    found = await ingest_batches(database_url, [later])
    assert {key[0]: json.loads(diff)["differences"] for key, diff in found.items()} == {
        later[0].id: {"unit_price": {"till": 499, "catalog": 450}}}
    assert replay._cached["demo"].skus["MLK-1L"] is milk  # untouched: not read again
    coffee = replay._cached["demo"].skus["COF-250"]
    assert coffee is not None and (("tenant", 1_577_836_800_000, 450) in
                                   [(p.scope, p.effective_from_ms, p.minor) for p in coffee.prices])
