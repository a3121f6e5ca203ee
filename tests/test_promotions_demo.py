"""The demo's promotions (hub.promotions.demo) on real PostgreSQL: the demo catalog's products in categories, three
promotions live through the workflow (simulated, submitted, audited, each at a catalog version), one draft left
for a person; a second seed changes nothing."""

from __future__ import annotations

import json

import asyncpg

from hub.catalog.demo import seed_demo_catalog
from hub.promotions import records, settings, simulation, workflow
from hub.promotions.demo import CHOCOLATE, COFFEE, WELCOME, seed_demo_promotions
from novapos import promotions
from novapos.config import HubConfig
from tests.stock_world import on_database


async def test_the_demo_seed_makes_live_promotions_once(hub_config: HubConfig) -> None:
    async def run(pool: asyncpg.Pool) -> tuple[int, int, list[asyncpg.Record], list[asyncpg.Record], int]:
        await pool.execute("INSERT INTO tenants (tenant, name, currency) VALUES ('shop', 'Shop', 'EUR');"
                           "INSERT INTO regions (tenant, region, name) VALUES ('shop', 'north', 'North');"
                           "INSERT INTO stores (tenant, store, region, name) VALUES ('shop', 's1', 'north', 'One')")
        await seed_demo_catalog(pool, "shop")
        first = await seed_demo_promotions(pool, "shop")
        second = await seed_demo_promotions(pool, "shop")
        rows = await pool.fetch("SELECT p.id, p.state, p.live_revision, p.version, r.body FROM promotions p JOIN"
                                " promotion_revisions r ON (r.tenant, r.promotion, r.revision) = (p.tenant, p.id,"
                                " p.revision) WHERE p.tenant = 'shop' ORDER BY p.id")
        items = await pool.fetch("SELECT v.sku, p.category, v.version FROM variants v JOIN products p USING (tenant,"
                                 " product) WHERE v.tenant = 'shop' AND v.sku IN ('COF-250', 'TEE-M-WHT')")
        audited = await pool.fetchval("SELECT count(*) FROM audit_records WHERE tenant = 'shop' AND action ="
                                      " 'promotion.submitted'")
        # A person submitting the chocolate draft: the demo asks for a second person's approval of every promotion.
        async with pool.acquire() as conn:
            assert (await settings.settings(conn, "shop")).approval_threshold_minor == 0
            proposal = records.promotion_of(await records.revision_body(conn, "shop", CHOCOLATE, 1))
            assert proposal.regions == frozenset({"north"})  # so that north, the region's admin, may approve it
            past = await simulation.history(conn, "shop", proposal)
            saved = await simulation.save(conn, "shop", proposal, past, simulation.predict(proposal, past), "admin")
        submitted = await workflow.submit(pool, "shop", CHOCOLATE, saved["id"], "admin", lambda _regions, _stores: None)
        assert submitted["state"] == "pending", submitted
        return first, second, rows, items, audited
    first, second, rows, items, audited = await on_database(hub_config.database_url, run)
    assert (first, second, audited) == (4, 0, 3)
    states = {row["id"]: (row["state"], row["live_revision"]) for row in rows}
    assert states[COFFEE] == ("live", 1) and states[WELCOME] == ("live", 1) and states[CHOCOLATE] == ("draft", None)
    welcome = promotions.from_wire(json.loads(next(row["body"] for row in rows if row["id"] == WELCOME)))
    assert welcome.code_only and welcome.public_codes == frozenset({"WELCOME5"})
    assert {row["sku"]: row["category"] for row in items} == {"COF-250": "food/coffee", "TEE-M-WHT": "clothing/tops"}
    versions = sorted(row["version"] for row in rows if row["version"] is not None)
    assert len(set(versions)) == 3 and min(versions) > max(row["version"] for row in items)
