"""Replay validation of promotions at the hub (hub.promotions.replay) on real PostgreSQL: a v5 sale is
re-evaluated with the engine and the promotions the store's copy held at the catalog version it names; a sale that
agrees leaves nothing, one that disagrees leaves one deterministic diff (canonical JSON, the same bytes on a
replay), listed by /api/promotion-diffs and counted in novapos_hub_promotion_diffs_total."""

from __future__ import annotations

import json
from collections.abc import Sequence

import asyncpg
import trio
from prometheus_client import REGISTRY

from hub.app import run_hub
from hub.promotions.replay import apply_sales
from hub.sales.replay import canonical
from novapos.config import HubConfig
from novapos.demo.embedded_nats import EmbeddedNats
from novapos.wire.envelope import Envelope
from novapos.wire.subjects import event_subject
from tests.conftest import query, wait_until
from tests.events import publish
from tests.identity import add_user, grant, signed_in
from tests.promotions_support import percent_off, promoted_sale, promotion_world
from tests.stock_world import on_database


def _diffs_counted() -> float:
    return REGISTRY.get_sample_value("novapos_hub_promotion_diffs_total") or 0.0


async def _apply(url: str, events: Sequence[Envelope]) -> None:
    """The applier in a transaction of its own, as the inbox runs it (the inbox rows first)."""
    async def run(pool: asyncpg.Pool) -> None:
        async with pool.acquire() as conn, conn.transaction():
            await conn.executemany("INSERT INTO inbox (event_id, tenant, store, seq, type) VALUES ($1, $2, $3, $4, $5)",
                                   [(e.id, e.tenant, e.store, e.seq, e.type) for e in events])
            await apply_sales(conn, events)
    await on_database(url, run)


async def test_a_sale_that_disagrees_with_the_hub_leaves_one_canonical_diff(hub_config: HubConfig) -> None:
    url = hub_config.database_url
    async with trio.open_nursery() as nursery:
        hub = await nursery.start(run_hub, hub_config)
        await promotion_world(url)
        await add_user(url, "ada", grant("tenant_admin"))
        async with signed_in(hub.url, "ada") as ada:
            before = int((await query(url, "SELECT version FROM catalog_versions WHERE tenant = 'demo'"))[0][0])
            promotion = (await ada.post("/api/promotions", json=percent_off("Coffee 10 % off", 1000))).json()["id"]
            live = (await ada.post(f"/api/promotions/{promotion}/submit", json={})).json()
            assert live["state"] == "live", live
            version = live["catalog_version"]
            assert version == before + 1
            counted = _diffs_counted()
            name = "Coffee 10 % off"
            agrees = promoted_sale([(promotion, name, 100)], version=version, seq=1)  # 10 % of 9.98
            overpaid = promoted_sale([(promotion, name, 150)], version=version, seq=2)
            missing = promoted_sale([], version=version, seq=3)
            before_it = promoted_sale([], version=before, seq=4)  # the store did not have it yet: right
            early = promoted_sale([(promotion, name, 100)], version=before, seq=5)  # claims it before it was sent
            other_store = promoted_sale([(promotion, name, 100)], version=version, seq=1, store="store-003")
            await _apply(url, [agrees, overpaid, missing, before_it, early, other_store])
            assert _diffs_counted() == counted + 3

            listed = await ada.get("/api/promotion-diffs")
            assert listed.status_code == 200, listed.text
            by_sale = {item["event_id"]: item for item in listed.json()["items"]}
            assert set(by_sale) == {str(overpaid.id), str(missing.id), str(early.id)}
            assert by_sale[str(overpaid.id)]["diff"]["lines"] == [{
                "line": "l1", "sku": "COF-250", "till": [{"promotion": promotion, "amount": 150}],
                "hub": [{"promotion": promotion, "amount": 100}]}]
            assert by_sale[str(missing.id)]["diff"]["lines"][0]["hub"] == [{"promotion": promotion, "amount": 100}]
            assert by_sale[str(early.id)]["diff"]["lines"][0]["hub"] == []
            assert by_sale[str(early.id)]["diff"]["promotions_version"] == before
            page = await ada.get("/api/promotion-diffs", params={"limit": 2})
            rest = await ada.get("/api/promotion-diffs", params={"limit": 2, "after": page.json()["next"]})
            assert len(page.json()["items"]) == 2 and [i["event_id"] for i in rest.json()["items"]] == \
                [i["event_id"] for i in listed.json()["items"]][2:]
        await add_user(url, "mona", grant("store_manager", "store-003"))
        async with signed_in(hub.url, "mona") as mona:
            assert (await mona.get("/api/promotion-diffs")).json()["items"] == []  # her store sold as the hub says
        nursery.cancel_scope.cancel()

    stored = {row["event_id"]: row["diff"] for row in await query(url, "SELECT event_id, diff FROM promotion_diffs")}
    text = stored[overpaid.id]
    assert text == canonical(json.loads(text)) and " " not in text.replace("Coffee 10 % off", "")
    # The same sale met again (another hub, a replay) gives the same bytes.
    await query(url, "DELETE FROM promotion_diffs WHERE event_id = $1", overpaid.id)
    again = Envelope(id=overpaid.id, type=overpaid.type, v=5, tenant="demo", store="store-001", seq=2, ts=overpaid.ts,
                     body=overpaid.body)

    async def reapply(pool: asyncpg.Pool) -> None:
        async with pool.acquire() as conn, conn.transaction():
            await apply_sales(conn, [again])
    await on_database(url, reapply)
    assert (await query(url, "SELECT diff FROM promotion_diffs WHERE event_id = $1", overpaid.id))[0][0] == text


async def test_sales_arriving_through_ingest_are_validated_once(hub_config: HubConfig,
                                                                nats_server: EmbeddedNats) -> None:
    """End to end: v5 sales published to the hub's stream are stored as sales and validated in the same inbox
    transaction; a replayed event (the same id) neither applies twice nor adds a second diff."""
    url = hub_config.database_url
    async with trio.open_nursery() as nursery:
        hub = await nursery.start(run_hub, hub_config)
        await promotion_world(url)
        await add_user(url, "ada", grant("tenant_admin"))
        async with signed_in(hub.url, "ada") as ada:
            promotion = (await ada.post("/api/promotions", json=percent_off("Coffee 10 % off", 1000))).json()["id"]
            version = (await ada.post(f"/api/promotions/{promotion}/submit", json={})).json()["catalog_version"]
        good = promoted_sale([(promotion, "Coffee 10 % off", 100)], version=version, seq=1)
        wrong = promoted_sale([(promotion, "Coffee 10 % off", 120)], version=version, seq=2)
        subject = event_subject("demo", "store-001", "sale.completed")
        await publish(nats_server, [(subject, good.encode(), None), (subject, wrong.encode(), None),
                                    (subject, wrong.encode(), None)])

        async def stored() -> bool:
            return (await query(url, "SELECT count(*) FROM sales WHERE tenant = 'demo'"))[0][0] == 2
        await wait_until(stored)
        await trio.sleep(0.5)  # a replay of `wrong` would have landed by now
        nursery.cancel_scope.cancel()
    diffs = await query(url, "SELECT event_id FROM promotion_diffs")
    assert [row["event_id"] for row in diffs] == [wrong.id]
