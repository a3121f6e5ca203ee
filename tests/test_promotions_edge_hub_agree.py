"""A promotion set with overlapping rules gives the same result at the edge and the hub on 1,000 random carts.

Both sides go through what they really run, from the same published definitions:
- the hub: the demo catalog with its categories and demo promotions, plus 40 random promotions (every kind,
  overlapping targets, thresholds, caps, days and hours, store and region scopes, coupons, customers and
  tiers, every stacking) created, simulated and submitted through hub.promotions.workflow, each going live
  as a catalog version the hub's publisher sends on the tenant's catalog stream (real PostgreSQL, real NATS);
- the edge: the store's catalog sync (logged in as the store) applies them into catalog.sqlite3; each cart is
  a till's Cart (actors.till.cart) priced by the source a till gives it (LocalCatalog.promotions(), the
  store, its region, the moment), with a customer and tier attached and coupons held as the till holds them,
  paid and checked out into its sale.completed body, encoded and decoded by the wire's schemas;
- the hub again: its applier of sale.completed v5 (hub.promotions.replay.apply_sales), re-evaluating each
  sale with the revisions live at the catalog version the sale names; a disagreement leaves a diff.
No diff may appear. A sale the till kept v3 (no promotion, customer or coupon) is replayed as the v5 it would
have been (its body plus promotions_version), so it is checked at the version the till held: the hub must find
no promotion for it either. (The hub also checks a real v3/v4 against what was live at its time:
tests/test_promotions_review.py.)"""

from __future__ import annotations

import asyncio
import copy
import json
import random
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import trio
from prometheus_client import REGISTRY

from actors.catalog.local import CatalogMissing, LocalCatalog, Offer, catalog_path
from actors.till import promoting
from actors.till.cart import Cart
from hub.app import run_hub
from hub.catalog.demo import seed_demo_catalog
from hub.promotions import records, settings, simulation, workflow
from hub.promotions.demo import seed_demo_promotions
from hub.promotions.replay import apply_sales
from novapos import promotions as engine
from novapos.config import HubConfig
from novapos.demo.embedded_nats import EmbeddedNats
from novapos.pricing import line_tax
from novapos.wire.envelope import Envelope, decode
from novapos.wire.ids import uuid7
from tests import promotion_support as support
from tests.catalog_support import add_tenancy
from tests.conftest import wait_until
from tests.stock_world import on_database
from tests.test_catalog_sync import syncing

STORE, REGION = "store-001", "north"
CARTS = 1000
RANDOM_PROMOTIONS = 40
DAY_MS = support.DAY_MS


def _validated() -> float:
    return REGISTRY.get_sample_value("novapos_hub_promotion_sales_validated_total") or 0.0


def copy_of(sale: Envelope) -> Envelope:
    """Another sale (a new id) with the same body, deep-copied."""
    return Envelope(id=uuid7(), type=sale.type, v=sale.v, tenant=sale.tenant, store=sale.store, seq=sale.seq + CARTS,
                    ts=sale.ts, body=copy.deepcopy(sale.body))


def _anyone(_regions: tuple[str, ...], _stores: tuple[str, ...]) -> None:
    """The test acts over the whole tenant."""


async def _publish(pool: asyncpg.Pool, start_ms: int) -> int:
    """The demo catalog, its categories and promotions, and RANDOM_PROMOTIONS random ones live; how many live."""
    await seed_demo_catalog(pool)
    await seed_demo_promotions(pool, "demo")
    # The demo asks for a second person's approval of every promotion; this test's promotions go live at submit.
    await settings.set_settings(pool, "demo", settings.DEFAULTS, "tester")
    products = [support.Product(row["sku"], row["category"], 0) for row in await pool.fetch(
        "SELECT v.sku, coalesce(p.category, '') AS category FROM variants v JOIN products p USING (tenant, product)"
        " WHERE v.tenant = 'demo' ORDER BY v.sku")]
    rng = random.Random(2026)
    for number in range(RANDOM_PROMOTIONS):
        promotion = support.promotion(rng, f"x{number}", products, start_ms=start_ms)
        body = {key: value for key, value in engine.to_wire(promotion).items()
                if key not in ("id", "version", "currency", "timezone")}
        made = await workflow.create(pool, "demo", body, "tester", _anyone)
        promotion_id = uuid.UUID(str(made["id"]))
        async with pool.acquire() as conn:
            proposal = records.promotion_of(await records.revision_body(conn, "demo", promotion_id, 1))
            past = await simulation.history(conn, "demo", proposal)
            saved = await simulation.save(conn, "demo", proposal, past, simulation.predict(proposal, past), "tester")
        submitted = await workflow.submit(pool, "demo", promotion_id, saved["id"], "tester", _anyone)
        assert submitted["state"] == "live", submitted
    return int(await pool.fetchval("SELECT count(*) FROM promotion_live WHERE tenant = 'demo' AND live_until IS NULL"))


def _sell(rng: random.Random, number: int, offers: list[Offer], found: Any, promotions: list[engine.Promotion],
          start_ms: int) -> Envelope:
    """One random cart through the till's Cart, paid in cash and checked out: its sale.completed."""
    context = support.context(rng, promotions, start_ms=start_ms, store=STORE)
    pricing = promoting.Pricing(found.catalog_version, found.rules, STORE, REGION, context.at_ms)
    cart = Cart("EUR", 10**9, source=lambda: pricing)
    cart.customer, cart.tier = context.customer, context.tier
    for _ in range(rng.randrange(1, 9)):
        assert cart.add(rng.choice(offers), rng.choice((1, 1, 1, 2, 3, 5))) is None
    by_id = {promotion.id: promotion for promotion in promotions}
    for held in sorted(context.coupons):
        public = sorted(by_id[held].public_codes)
        coupon = promoting.Coupon(public[0] if public else f"HUB{number}X{held[:8]}".upper(), held, str(uuid.uuid4()),
                                  bool(public))
        assert cart.add_coupon(coupon) is None
    if (due := cart.due().minor) > 0:
        assert cart.tender_cash(due) is None
    body = cart.checkout("till-1", "session-1", "alice")
    assert isinstance(body, dict), body
    sale = Envelope(id=uuid7(), type="sale.completed", v=promoting.sale_version(body, 3), tenant="demo", store=STORE,
                    seq=number + 1, ts=context.at_ms, body=body)
    return decode(sale.encode())  # the wire's schemas check it, as the hub's ingest does


async def _replay(pool: asyncpg.Pool, sales: list[Envelope]) -> list[str]:
    """The hub's applier over every sale, a hundred per transaction as the inbox batches them; the diffs."""
    for at in range(0, len(sales), 100):
        batch = sales[at:at + 100]
        async with pool.acquire() as conn, conn.transaction():
            await conn.executemany("INSERT INTO inbox (event_id, tenant, store, seq, type) VALUES ($1, $2, $3, $4, $5)",
                                   [(e.id, e.tenant, e.store, e.seq, e.type) for e in batch])
            await apply_sales(conn, batch)
    return [str(row["diff"]) for row in await pool.fetch("SELECT diff FROM promotion_diffs ORDER BY sold_at")]


async def test_a_promotion_set_with_overlapping_rules_gives_the_same_result_at_the_edge_and_the_hub_on_1000_carts(
        hub_config: HubConfig, nats_server: EmbeddedNats, tmp_path: Path) -> None:
    url = hub_config.database_url
    state = tmp_path / "edge"
    start_ms = int(time.time() * 1000) - 10 * DAY_MS

    def held() -> tuple[int, int]:
        if not catalog_path(state).exists():
            return (0, 0)
        catalog = LocalCatalog(catalog_path(state), STORE, REGION)
        try:
            return catalog.version(), len(catalog.promotions().rules)
        except CatalogMissing:
            return (0, 0)
        finally:
            catalog.close()

    async with trio.open_nursery() as nursery:
        await nursery.start(run_hub, hub_config)
        await trio.to_thread.run_sync(asyncio.run, add_tenancy(url))
        live = await on_database(url, lambda pool: _publish(pool, start_ms))
        version = int(await on_database(url, lambda pool: pool.fetchval(
            "SELECT version FROM catalog_versions WHERE tenant = 'demo'")))
        async with syncing(nats_server, state):
            async def synced() -> bool:
                return held()[0] == version
            await wait_until(synced, timeout=60)
        nursery.cancel_scope.cancel()

    catalog = LocalCatalog(catalog_path(state), STORE, REGION)
    found = catalog.promotions()
    promotions = list(found.rules.promotions)
    in_scope = [p for p in promotions if (not p.stores and not p.regions) or STORE in p.stores or REGION in p.regions]
    assert found.catalog_version == version and len(promotions) == len(in_scope) and 20 <= len(promotions) <= live
    offers = [offer for offer in catalog.page("", "", 500, int(time.time() * 1000))[0] if isinstance(offer, Offer)]
    catalog.close()
    assert len({offer.category for offer in offers}) >= 8, "the demo catalog's categories did not reach the store"

    rng = random.Random(11)
    sales = [_sell(rng, number, offers, found, promotions, start_ms) for number in range(CARTS)]
    promoted = [sale for sale in sales if any(line.get("promotions") for line in sale.body["lines"])]
    kept_v3 = [sale for sale in sales if sale.v < 5]
    assert all(not any(line.get("promotions") for line in sale.body["lines"]) for sale in kept_v3)
    as_v5 = [Envelope(id=sale.id, type=sale.type, v=5, tenant=sale.tenant, store=sale.store, seq=sale.seq, ts=sale.ts,
                      body={**sale.body, "promotions_version": found.catalog_version}) for sale in kept_v3]
    replayed = [sale for sale in sales if sale.v == 5] + [decode(sale.encode()) for sale in as_v5]
    validated = _validated()
    diffs = await on_database(url, lambda pool: _replay(pool, replayed))
    assert diffs == [], f"{len(diffs)} of {CARTS} sales disagree; the first: {diffs[:3]}"
    assert _validated() - validated == CARTS

    # The same path does see a till that disagrees: one minor unit less off one promoted line (its tax, the
    # totals and the cash tender following, so that the sale is valid).
    tampered = copy_of(next(sale for sale in promoted if sale.body["tenders"] and any(
        line.get("promotions", [{}])[0].get("amount", {}).get("minor", 0) > 1 for line in sale.body["lines"])))
    line = next(line for line in tampered.body["lines"] if line.get("promotions", [{}])[0]["amount"]["minor"] > 1)
    line["promotions"][0]["amount"]["minor"] -= 1
    line["amount"]["minor"] += 1
    tax = line_tax(line["amount"]["minor"], line["tax"]["rate_ppm"], line["tax"]["included"])
    added = 1 + (0 if line["tax"]["included"] else tax - line["tax"]["amount"]["minor"])
    tampered.body["tax_total"]["minor"] += tax - line["tax"]["amount"]["minor"]
    line["tax"]["amount"]["minor"] = tax
    tampered.body["total"]["minor"] += added
    tampered.body["tenders"][0]["amount"]["minor"] += added
    [diff] = await on_database(url, lambda pool: _replay(pool, [decode(tampered.encode())]))
    [disagreement] = json.loads(diff)["lines"]
    assert disagreement["line"] == line["line"]
    assert sum(p["amount"] for p in disagreement["till"]) + 1 == sum(p["amount"] for p in disagreement["hub"])

    # The carts exercised what the set holds: many promoted sales, most promotions, each kind and stacking.
    applied = {promotion["promotion"] for sale in promoted for line in sale.body["lines"]
               for promotion in line.get("promotions", ())}
    by_id = {promotion.id: promotion for promotion in promotions}
    assert len(promoted) >= CARTS // 3, len(promoted)
    assert len(applied) >= len(promotions) // 2, (len(applied), len(promotions))
    assert {by_id[p].kind for p in applied} == set(engine.KINDS)
    assert {by_id[p].stacking for p in applied} == set(engine.STACKINGS)
    assert any(by_id[p].code_only for p in applied) and any(by_id[p].customers_only for p in applied)
