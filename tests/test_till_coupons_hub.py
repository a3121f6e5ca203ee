"""A coupon from the till to the hub and back, end to end: the hub issues a single-use code for a live code_only
promotion, the till (web API) reserves it over real NATS, prices the cart with the same promotion from its local
copy, and sells; the hub ingests the sale.completed v5, confirms the code's use, and its replay validation agrees
with the till to the minor unit (no diff). The same code at another sale is refused by the hub; a voided cart's
reservation is released there. Real hub, PostgreSQL, NATS, SQLite and sockets."""

from __future__ import annotations

import functools
import json
import uuid

import asyncpg
import httpx
import trio

from edge.app import run_edge
from hub.app import run_hub
from novapos import promotions as engine
from novapos.config import HubConfig, StoreConfig
from novapos.wire.catalog import PromotionMessage, VersionMarker
from tests.catalog import demo_catalog, seed_catalog
from tests.conftest import query, wait_until
from tests.console_access import sign_in_admin
from tests.fleet import fleet_world
from tests.pos import COFFEE, MILK, log_in
from tests.stock_world import on_database

TILL = "/api/tills/till-1"
CATALOG_VERSION = 2


PROMOTION = "0190a3c4-7e1f-7b2a-9c3d-0000000000f1"
COUPON_PROMOTION = engine.from_wire({
    "id": PROMOTION, "version": 1, "currency": "EUR", "timezone": "Europe/Paris", "name": "Ten off with a code",
    "kind": "percent", "applies_to": "order", "value": 1000, "code_only": True})


async def _live(pool: asyncpg.Pool) -> None:
    """The coupon promotion live for the stores from catalog version 1, written as hub.promotions records a go-live
    (head, revision 1 with the engine's wire body, its live period)."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("INSERT INTO promotions (tenant, id, name, state, revision, live_revision, created_by, version)"
                           " VALUES ('demo', $1, $2, 'live', 1, 1, 'ada', 1)", uuid.UUID(PROMOTION),
                           COUPON_PROMOTION.name)
        await conn.execute("INSERT INTO promotion_revisions (tenant, promotion, revision, body, author)"
                           " VALUES ('demo', $1, 1, $2::jsonb, 'ada')", uuid.UUID(PROMOTION),
                           json.dumps(engine.to_wire(COUPON_PROMOTION)))
        await conn.execute("INSERT INTO promotion_live (tenant, promotion, revision, live_from, from_version) VALUES"
                           " ('demo', $1, 1, now() - interval '1 day', 1)", uuid.UUID(PROMOTION))


async def _used(database_url: str, redemption: str) -> list[asyncpg.Record]:
    return [row for row in await query(database_url, "SELECT state FROM coupon_redemptions WHERE redemption = $1",
                                       redemption) if row["state"] == "used"]


async def test_a_hub_coupon_is_reserved_sold_confirmed_and_validated_without_a_diff(
        store_config: StoreConfig, hub_config: HubConfig, http: httpx.AsyncClient) -> None:
    async with trio.open_nursery() as nursery:
        hub = await nursery.start(run_hub, hub_config)
        await fleet_world(hub_config.database_url)
        await on_database(hub_config.database_url, _live)
        async with httpx.AsyncClient(timeout=10) as console:
            await sign_in_admin(console, hub.url, hub_config.database_url)
            made = await console.post(f"{hub.url}/api/coupon-batches", json={"promotion": PROMOTION, "count": 2})
            assert made.status_code == 201, made.text
        code, other = made.json()["codes"]
        messages = demo_catalog(CATALOG_VERSION)
        seed_catalog(store_config.state_dir, [*messages[:-1], PromotionMessage(COUPON_PROMOTION, True),
                                              VersionMarker(CATALOG_VERSION, 0)])
        edge = await nursery.start(run_edge, store_config)
        await log_in(http, edge.url)
        for barcode in (COFFEE, MILK):
            assert (await http.post(f"{edge.url}{TILL}/lines", json={"barcode": barcode})).status_code == 200

        async def reserved() -> httpx.Response | None:  # the hub's responders come up just after it is ready
            answer = await http.post(f"{edge.url}{TILL}/coupons", json={"code": code.lower()})
            return answer if answer.status_code == 200 else None
        state = (await wait_until(reserved, timeout=20)).json()
        [coupon] = state["coupons"]
        assert (coupon["promotion"], coupon["offline"], coupon["applied"]) == (PROMOTION, False, True)
        assert state["total"]["minor"] == 499 + 129 - 63  # 10 % of 6.28, rounded half up
        again = await http.post(f"{edge.url}{TILL}/coupons", json={"code": code})
        assert again.status_code == 409

        paid = await http.post(f"{edge.url}{TILL}/tenders", json={"method": "cash", "amount_minor": 565})
        assert paid.status_code == 200, paid.text
        receipt = (await http.post(f"{edge.url}{TILL}/complete", json={"cart": state["cart"]})).json()
        sale = uuid.UUID(receipt["sale"])
        [row] = await wait_until(lambda: query(hub_config.database_url, "SELECT v FROM sales WHERE event_id = $1",
                                               sale), timeout=20)
        assert row["v"] == 5
        assert await wait_until(functools.partial(_used, hub_config.database_url, coupon["redemption"]), timeout=10)
        assert await query(hub_config.database_url, "SELECT diff FROM promotion_diffs") == []

        # the used code is the hub's to refuse at the next sale; a reserved one goes back when its cart is voided
        assert (await http.post(f"{edge.url}{TILL}/lines", json={"barcode": MILK})).status_code == 200
        used = await http.post(f"{edge.url}{TILL}/coupons", json={"code": code})
        assert used.status_code == 409, used.text
        held = await http.post(f"{edge.url}{TILL}/coupons", json={"code": other})
        assert held.status_code == 200, held.text
        redemption = held.json()["coupons"][0]["redemption"]
        assert (await http.delete(f"{edge.url}{TILL}/cart")).status_code == 200
        assert await wait_until(functools.partial(query, hub_config.database_url, "SELECT 1 FROM coupon_redemptions"
                                                  " WHERE redemption = $1 AND state = 'released'", redemption))
        nursery.cancel_scope.cancel()
