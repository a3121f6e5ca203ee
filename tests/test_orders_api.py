"""Orders in the console against a real hub and PostgreSQL: keyset pages that neither repeat nor lose an
order across ties and new arrivals, filters answered in SQL, an order's lines, tenders and replay diffs, and
every read narrowed to the signed-in user's tenant and reach (another region's order 403, another tenant's
404); bad parameters are a 400 that says which and why."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Sequence
from typing import Any

import asyncpg
import httpx
import trio

from hub.app import run_hub
from hub.ingest.inbox import Delivery, ingest
from novapos.config import HubConfig
from novapos.wire.subjects import event_subject
from tests.conftest import query
from tests.events import sale_event
from tests.identity import add_user, grant, signed_in
from tests.stock_world import build_world, on_database

# 120 sales over three stores and two tills, received at only 10 distinct instants: ties everywhere.
FILL_SQL = """
INSERT INTO sales (event_id, tenant, store, seq, till, session, cashier, currency, total_minor, tendered_minor,
                   change_minor, completed_at, received_at)
SELECT gen_random_uuid(), 'demo', 'store-00' || (1 + n % 3), 1000 + n, 'till-' || (1 + n % 2), 's', 'bo', 'EUR',
       n * 10, n * 10, 0, timestamptz '2026-11-01 12:00Z' + make_interval(mins => n),
       timestamptz '2026-11-02 12:00Z' + make_interval(hours => n % 10)
FROM generate_series(1, 120) AS n
"""
ALL_DEMO = "SELECT event_id::text FROM sales WHERE tenant = 'demo' {} ORDER BY received_at DESC, event_id DESC"


async def _ingest(database_url: str, events: Sequence[Any]) -> None:
    async def body(pool: asyncpg.Pool) -> None:
        await ingest(pool, [Delivery(event_subject(e.tenant, e.store, e.type), e.encode()) for e in events],
                     frozenset({"demo", "other"}))
    await on_database(database_url, body)


async def _ids(database_url: str, where: str = "", *args: object) -> list[str]:
    return [row["event_id"] for row in await query(database_url, ALL_DEMO.format(where), *args)]


async def _walk(client: httpx.AsyncClient, params: str, limit: int) -> list[str]:
    """Every page of /api/orders?params, following `next`; asserts pages are full until the last."""
    seen: list[str] = []
    before = ""
    while True:
        answer = await client.get(f"/api/orders?{params}&limit={limit}{before}")
        assert answer.status_code == 200, answer.text
        page = answer.json()
        seen += [item["event_id"] for item in page["items"]]
        if page["next"] is None:
            return seen
        assert len(page["items"]) == limit
        before = f"&before={page['next']}"


async def test_orders_pages_filters_detail_and_reach(hub_config: HubConfig) -> None:
    url = hub_config.database_url
    async with trio.open_nursery() as nursery:
        hub = await nursery.start(run_hub, hub_config)
        await build_world(url)
        await add_user(url, "ada", grant("tenant_admin"))
        await add_user(url, "nora", grant("regional_admin", "north"))
        await add_user(url, "mona", grant("store_manager", "store-001"))
        await add_user(url, "otto", grant("tenant_admin"), tenant="other")
        sold = sale_event(seq=1)
        south = sale_event(seq=1, store="store-003")
        foreign = dataclasses.replace(sale_event(seq=1, store="o-1"), tenant="other")
        await _ingest(url, [sold, south, foreign])
        await query(url, FILL_SQL)

        async with signed_in(hub.url, "ada") as ada:
            everything = await _ids(url)
            assert len(everything) == 122 and str(foreign.id) not in everything
            assert await _walk(ada, "", 7) == everything  # across ties: none repeated, none lost
            first = (await ada.get("/api/orders?limit=5")).json()
            await _ingest(url, [sale_event(seq=2)])  # arrives while the admin pages: stays off the older pages
            rest = await _walk(ada, f"before={first['next']}", 50)
            assert [i["event_id"] for i in first["items"]] + rest == everything

            till = await _walk(ada, "store=store-002&till=till-1", 4)
            assert till == await _ids(url, "AND store = 'store-002' AND till = 'till-1'") and till
            ranged = await _walk(ada, "from=2026-11-02T14:00:00Z&to=2026-11-02T17:00:00%2B00:00", 9)
            assert ranged == await _ids(url, "AND received_at >= '2026-11-02 14:00Z' AND received_at < '2026-11-02 17:00Z'")
            assert len(ranged) == 36
            day = await _walk(ada, "store=store-001&from=2026-11-02&to=2026-11-03", 50)
            assert day == await _ids(url, "AND store = 'store-001' AND received_at < '2026-11-03'")

            order = (await ada.get(f"/api/orders/{sold.id}")).json()
            assert (order["store"], order["region"], order["till"], order["total_minor"]) == \
                ("store-001", "north", "till-1", 499)
            assert [(line["sku"], line["quantity"], line["amount_minor"]) for line in order["lines"]] == \
                [("COF-250", 1, 499)]
            assert [(t["method"], t["amount_minor"]) for t in order["tenders"]] == [("cash", 499)]
            [diff] = order["price_diffs"]  # the world's catalog has no price for COF-250: replay says so
            assert diff["sku"] == "COF-250" and "no_price_in_force" in diff["diff"]["differences"]
            listed = (await ada.get("/api/price-diffs")).json()
            assert {d["event_id"] for d in listed} >= {str(sold.id), str(south.id)}
            assert (await ada.get("/api/orders?tenant=other")).status_code == 404
            assert (await ada.get(f"/api/orders/{foreign.id}")).status_code == 404

        async with signed_in(hub.url, "nora") as nora:
            north = await _ids(url, "AND store IN ('store-001', 'store-002')")
            assert await _walk(nora, "", 11) == north
            refused = await nora.get("/api/orders?store=store-003")
            assert refused.status_code == 403 and "tenant admin" in refused.json()["error"]
            assert (await nora.get(f"/api/orders/{south.id}")).status_code == 403
            assert (await nora.get(f"/api/orders/{foreign.id}")).status_code == 404
            assert (await nora.get("/api/orders?store=o-1")).status_code == 404
            assert (await nora.get("/api/orders/" + str(uuid.uuid4()))).status_code == 404
            assert (await nora.get(f"/api/orders/{sold.id}")).json()["event_id"] == str(sold.id)
            assert {s["store"] for s in (await nora.get("/api/stores")).json()} == {"store-001"}  # with sales
            assert {s["store"] for s in (await nora.get("/api/sales?limit=500")).json()} == {"store-001", "store-002"}
            assert {d["store"] for d in (await nora.get("/api/price-diffs")).json()} == {"store-001"}

        async with signed_in(hub.url, "mona") as mona:
            assert await _walk(mona, "", 50) == await _ids(url, "AND store = 'store-001'")
            assert (await mona.get("/api/orders?store=store-002")).status_code == 403

        async with signed_in(hub.url, "otto") as otto:
            assert await _walk(otto, "", 50) == [str(foreign.id)]
            assert (await otto.get(f"/api/orders/{sold.id}")).status_code == 404
            assert (await otto.get("/api/orders?store=store-001")).status_code == 404

        async with httpx.AsyncClient(base_url=hub.url) as anonymous:
            for path in ("/api/orders", f"/api/orders/{sold.id}", "/api/stores", "/api/sales", "/api/price-diffs"):
                assert (await anonymous.get(path)).status_code == 401, path
        nursery.cancel_scope.cancel()


BAD_PARAMETERS = [
    ("limit=0", "limit"), ("limit=201", "limit"), ("limit=abc", "limit"), ("limit=" + "9" * 5000, "limit"),
    ("before=abc", "before"), ("before=1_zzz", "before"), ("before=" + "9" * 18 + "_" + str(uuid.uuid4()), "before"),
    ("from=yesterday", "from"), ("from=2026-11-02T10:00:00", "from"), ("from=" + "2" * 5000, "from"),
    ("from=2026-11-03&to=2026-11-02", "to"), ("till=till-1", "till"), ("store=a%00b", "store"),
    ("store=" + "x" * 100, "store"), ("store=%E2%80%AE", "store"), ("colour=red", "colour"),
]


async def test_bad_order_parameters_are_refused_with_a_sentence(hub_config: HubConfig) -> None:
    async with trio.open_nursery() as nursery:
        hub = await nursery.start(run_hub, hub_config)
        await build_world(hub_config.database_url)
        await add_user(hub_config.database_url, "ada", grant("tenant_admin"))
        async with signed_in(hub.url, "ada") as ada:
            for params, named in BAD_PARAMETERS:
                answer = await ada.get(f"/api/orders?{params}")
                assert answer.status_code == 400 and named in answer.json()["error"], (params, answer.text)
            for bad in ("0", "nope", "0190A1B2-C3D4-7E5F-8A9B-0C1D2E3F4A5B", "x" * 5000, "%00"):
                answer = await ada.get(f"/api/orders/{bad}")
                assert answer.status_code == 404 and "error" in answer.json(), (bad, answer.text)
            assert (await ada.get("/api/orders")).json() == {"items": [], "next": None}
        nursery.cancel_scope.cancel()
