"""The promotions review's findings (/work/scratch/review-promo.md), on a real hub (PostgreSQL, NATS):

- replay validation never raises on a well-formed sale (two lines sharing an id; a ts whose local date is
  outside the years 1-9999), which would stall ingest;
- a v3 sale (the till applied nothing: a stale or missing copy) is checked against what was live at its time;
- a customer's tier is the one hub.loyalty knew before the sale, not guessed from what the till applied;
- a regional admin cannot submit or end a promotion whose live revision reaches beyond her regions;
- the author of a promotion's terms cannot approve it because a colleague rescheduled and submitted it.
(An approval names the revision the approver saw: tests/test_promotions_workflow.py.)"""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import asyncpg
import trio

from hub.app import run_hub
from hub.promotions.replay import apply_sales
from novapos.config import HubConfig
from novapos.wire.envelope import MAX_TS_MS, Envelope, decode
from tests.conftest import query
from tests.identity import add_user, grant, signed_in
from tests.promotions_support import past_sales, percent_off, promoted_sale, promotion_world
from tests.stock_world import on_database


async def _apply(url: str, events: Sequence[Envelope]) -> None:
    """The applier in a transaction of its own, as the inbox runs it (the inbox rows first)."""
    async def run(pool: asyncpg.Pool) -> None:
        async with pool.acquire() as conn, conn.transaction():
            await conn.executemany("INSERT INTO inbox (event_id, tenant, store, seq, type) VALUES ($1, $2, $3, $4, $5)",
                                   [(e.id, e.tenant, e.store, e.seq, e.type) for e in events])
            await apply_sales(conn, events)
    await on_database(url, run)


def _valid(event: Envelope) -> Envelope:
    """The event as the hub's ingest decodes it: well-formed by the wire's schemas (or this raises)."""
    return decode(event.encode())


def _with(event: Envelope, **changes: object) -> Envelope:
    fields = {name: getattr(event, name) for name in ("id", "type", "v", "tenant", "store", "seq", "ts", "body")}
    return _valid(Envelope(**{**fields, **changes}))  # type: ignore[arg-type]


def _twice(event: Envelope) -> Envelope:
    """The sale with its line sold twice under the same line id (v5 does not require distinct ids)."""
    body = copy.deepcopy(event.body)
    body["lines"].append(copy.deepcopy(body["lines"][0]))
    for key in ("total",):
        body[key]["minor"] *= 2
    body["tenders"][0]["amount"]["minor"] *= 2
    return _with(event, body=body)


def _v3(event: Envelope, at: datetime) -> Envelope:
    """The same sale as a till that applied no promotion emits it: v3, no promotions_version."""
    body = copy.deepcopy(event.body)
    del body["promotions_version"]
    return _with(event, v=3, ts=int(at.timestamp() * 1000), body=body)


async def _diffs(url: str) -> dict[uuid.UUID, str]:
    return {row["event_id"]: row["diff"] for row in await query(url, "SELECT event_id, diff FROM promotion_diffs")}


async def test_replay_checks_odd_but_valid_sales_and_v3_sales_without_raising(hub_config: HubConfig) -> None:
    url = hub_config.database_url
    async with trio.open_nursery() as nursery:
        hub = await nursery.start(run_hub, hub_config)
        await promotion_world(url)
        await add_user(url, "ada", grant("tenant_admin"))
        async with signed_in(hub.url, "ada") as ada:
            await ada.put("/api/promotions/settings", json={"approval_threshold_minor": 50_000,
                                                            "timezone": "Asia/Tokyo", "simulation_days": 7})
            name = "Coffee 10 % off"
            promotion = (await ada.post("/api/promotions", json=percent_off(name, 1000, days=list(range(7))))).json()
            live = (await ada.post(f"/api/promotions/{promotion['id']}/submit", json={})).json()
            assert live["state"] == "live", live
        nursery.cancel_scope.cancel()
    version, pid = live["catalog_version"], promotion["id"]
    went_live = (await query(url, "SELECT live_from FROM promotion_live"))[0][0]

    doubled = _twice(promoted_sale([(pid, name, 100)], version=version, seq=1))  # both lines right
    doubled_wrong = _twice(promoted_sale([(pid, name, 100)], version=version, seq=2))
    doubled_wrong.body["lines"][1]["promotions"] = []
    doubled_wrong.body["lines"][1]["amount"]["minor"] += 100
    doubled_wrong = _with(doubled_wrong, body={**doubled_wrong.body, "total": {"minor": 1896, "currency": "EUR"},
                                               "tenders": [{**doubled_wrong.body["tenders"][0],
                                                            "amount": {"minor": 1896, "currency": "EUR"}}]})
    # Tokyo is 9 hours ahead: the last millisecond an envelope may carry is in the year 10000 there.
    last_moment = _with(promoted_sale([], version=version, seq=3), ts=MAX_TS_MS)
    # A till without the promotion (offline, stale copy) keeps the sale v3: checked against what was live then.
    missed = _v3(promoted_sale([], version=version, seq=4), datetime.now(UTC))
    before = _v3(promoted_sale([], version=version, seq=5), went_live - timedelta(hours=1))
    await _apply(url, [doubled, doubled_wrong, last_moment, missed, before])

    diffs = {event: json.loads(text) for event, text in (await _diffs(url)).items()}
    assert set(diffs) == {doubled_wrong.id, missed.id}, diffs
    hub_gives = [{"promotion": pid, "amount": 100}]
    # The second l1 only, named as the sale names it.
    assert diffs[doubled_wrong.id]["lines"] == [{"line": "l1", "sku": "COF-250", "till": [], "hub": hub_gives}]
    assert diffs[missed.id]["promotions_version"] is None
    assert diffs[missed.id]["lines"] == [{"line": "l1", "sku": "COF-250", "till": [], "hub": hub_gives}]


async def test_a_tier_promotion_is_checked_against_the_tier_loyalty_knew_before_the_sale(
        hub_config: HubConfig) -> None:
    """Default loyalty tiers: Member, Silver from 500.00, Gold from 1,500.00 of 12-month spend. A customer with
    600.00 before the sale (and 1,000.00 after it, so Gold now) was Silver: a Gold-only promotion the till gave
    is a diff. A Gold customer's is not; an unknown customer (no account) is checked with the guessed tier."""
    url = hub_config.database_url
    async with trio.open_nursery() as nursery:
        hub = await nursery.start(run_hub, hub_config)
        await promotion_world(url)
        await add_user(url, "ada", grant("tenant_admin"))
        async with signed_in(hub.url, "ada") as ada:
            name = "Gold coffee 10 % off"
            promotion = (await ada.post("/api/promotions", json=percent_off(
                name, 1000, customers_only=True, tiers=["Gold"]))).json()
            live = (await ada.post(f"/api/promotions/{promotion['id']}/submit", json={})).json()
            assert live["state"] == "live", live
        nursery.cancel_scope.cancel()
    version, pid = live["catalog_version"], promotion["id"]
    now = datetime.now(UTC)
    silver, gold, unknown = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    for customer, tier, spends in ((silver, "Gold", [(60_000, 30), (40_000, -1)]), (gold, "Gold", [(160_000, 60)])):
        await query(url, "INSERT INTO customers (tenant, id, created_by) VALUES ('demo', $1, 'test')", customer)
        await query(url, "INSERT INTO loyalty_accounts (tenant, customer, tier) VALUES ('demo', $1, $2)",
                    customer, tier)
        for spend, days_ago in spends:
            await query(url, "INSERT INTO loyalty_spend (tenant, event_id, customer, spend_minor, at) VALUES"
                             " ('demo', $1, $2, $3, $4)", uuid.uuid4(), customer, spend,
                        now - timedelta(days=days_ago))
    sales = {}
    for seq, customer in enumerate((silver, gold, unknown), 1):
        sale = promoted_sale([(pid, name, 100)], version=version, seq=seq)
        sales[customer] = _with(sale, body={**sale.body, "customer": {"id": str(customer)}})
    await _apply(url, list(sales.values()))
    diffs = await _diffs(url)
    assert set(diffs) == {sales[silver].id}, diffs
    assert '"hub":[]' in diffs[sales[silver].id]


async def test_a_region_admin_cannot_change_what_stores_outside_her_region_hold(hub_config: HubConfig) -> None:
    """A tenant-wide promotion is live; a tenant admin drafts it narrowed to the north. Rita (north's admin) may
    not submit that draft (it would take the promotion from every other store) nor end it."""
    url = hub_config.database_url
    async with trio.open_nursery() as nursery:
        hub = await nursery.start(run_hub, hub_config)
        await promotion_world(url)
        await add_user(url, "ada", grant("tenant_admin"))
        await add_user(url, "rita", grant("regional_admin", "north"))
        async with signed_in(hub.url, "ada") as ada, signed_in(hub.url, "rita") as rita:
            promotion = (await ada.post("/api/promotions", json=percent_off("All stores", 500))).json()["id"]
            assert (await ada.post(f"/api/promotions/{promotion}/submit", json={})).json()["state"] == "live"
            narrowed = await ada.put(f"/api/promotions/{promotion}",
                                     json=percent_off("North only", 500, regions=["north"]))
            assert narrowed.json()["state"] == "draft", narrowed.text
            for action in ("submit", "end"):
                refused = await rita.post(f"/api/promotions/{promotion}/{action}", json={})
                assert refused.status_code == 403 and "promotions.manage" in refused.text, (action, refused.text)
            after = (await ada.get(f"/api/promotions/{promotion}")).json()
            assert (after["state"], after["live_revision"]) == ("draft", 1)
            # A tenant admin may.
            assert (await ada.post(f"/api/promotions/{promotion}/submit", json={})).json()["live_revision"] == 2
        nursery.cancel_scope.cancel()


async def test_the_author_of_the_terms_cannot_approve_them_after_a_colleagues_edit(hub_config: HubConfig) -> None:
    """Ada writes a costly promotion; Bob only schedules it (a revision of his) and submits it: Ada, author of
    its terms, may not approve it; Carol may."""
    url = hub_config.database_url
    async with trio.open_nursery() as nursery:
        hub = await nursery.start(run_hub, hub_config)
        await promotion_world(url)
        for login in ("ada", "bob", "carol"):
            await add_user(url, login, grant("tenant_admin"))
        async with signed_in(hub.url, "ada") as ada, signed_in(hub.url, "bob") as bob, \
                signed_in(hub.url, "carol") as carol:
            await ada.put("/api/promotions/settings", json={"approval_threshold_minor": 0, "timezone": "UTC",
                                                            "simulation_days": 7})
            await past_sales(url, "store-001", 2)
            promotion = (await ada.post("/api/promotions", json=percent_off("Coffee 90 % off", 9000))).json()["id"]
            scheduled = await bob.post(f"/api/promotions/{promotion}/schedule",
                                       json={"starts_at": "2030-01-01T00:00:00+00:00", "ends_at": None})
            assert scheduled.json()["revision"] == 2, scheduled.text
            assert (await bob.post(f"/api/promotions/{promotion}/submit", json={})).json()["state"] == "pending"
            own = await ada.post(f"/api/promotions/{promotion}/approve", json={"revision": 2})
            assert own.status_code == 409 and "second person" in own.json()["error"], own.text
            approved = await carol.post(f"/api/promotions/{promotion}/approve", json={"revision": 2})
            assert approved.json()["live_revision"] == 2, approved.text
        nursery.cancel_scope.cancel()
