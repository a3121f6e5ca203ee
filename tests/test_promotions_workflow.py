"""Promotions at the hub through the console API, on a real hub (PostgreSQL, NATS): a draft simulated over past
sales, submitted, refused to its own author, approved by a second tenant admin (audited, the catalog version
bumped), scheduled and ended; revisions immutable; region admins confined to their regions; a store manager reads
only. Settings are tenant-wide and audited."""

from __future__ import annotations

import asyncpg
import pytest
import trio

from hub.app import run_hub
from novapos.config import HubConfig
from tests.conftest import query
from tests.identity import add_user, grant, signed_in
from tests.promotions_support import past_sales, percent_off, promotion_world


async def _version(url: str) -> int:
    return int((await query(url, "SELECT version FROM catalog_versions WHERE tenant = 'demo'"))[0][0])


async def test_a_costly_promotion_goes_live_only_once_a_second_admin_approves(hub_config: HubConfig) -> None:
    url = hub_config.database_url
    async with trio.open_nursery() as nursery:
        hub = await nursery.start(run_hub, hub_config)
        await promotion_world(url)
        await past_sales(url, "store-001", 10)
        await past_sales(url, "store-003", 5, days_ago=3)
        await past_sales(url, "store-001", 4, days_ago=40)  # outside the 28 days simulated
        for login in ("ada", "bob"):
            await add_user(url, login, grant("tenant_admin"))
        async with signed_in(hub.url, "ada") as ada, signed_in(hub.url, "bob") as bob:
            settings = await ada.put("/api/promotions/settings", json={
                "approval_threshold_minor": 1000, "timezone": "Europe/Paris", "simulation_days": 28})
            assert settings.status_code == 200, settings.text
            made = await ada.post("/api/promotions", json=percent_off("Coffee 10 % off", 1000))
            assert made.status_code == 201, made.text
            draft = made.json()
            promotion = draft["id"]
            assert (draft["state"], draft["revision"], draft["live_revision"]) == ("draft", 1, None)
            assert draft["promotion"]["timezone"] == "Europe/Paris" and draft["promotion"]["currency"] == "EUR"
            before = await _version(url)

            simulated = await ada.post(f"/api/promotions/{promotion}/simulate", json={})
            assert simulated.status_code == 200, simulated.text
            figures = simulated.json()
            # 15 sales in the window, each 2 x 4.99 = 9.98, 10 % off = 1.00 (round half up): 15.00, over 10.00.
            assert (figures["sales"], figures["sales_touched"], figures["cost_minor"]) == (15, 15, 1500), figures
            assert figures["per_store"] == {"store-001": {"cost_minor": 1000, "sales": 10, "sales_touched": 10},
                                            "store-003": {"cost_minor": 500, "sales": 5, "sales_touched": 5}}
            assert figures["needs_approval"] is True and figures["threshold_minor"] == 1000

            submitted = await ada.post(f"/api/promotions/{promotion}/submit", json={})
            assert submitted.status_code == 200 and submitted.json()["state"] == "pending", submitted.text
            assert await _version(url) == before  # nothing went to the stores
            own = await ada.post(f"/api/promotions/{promotion}/approve", json={"revision": 1})
            assert own.status_code == 409 and "second person" in own.json()["error"], own.text
            edit_pending = await ada.put(f"/api/promotions/{promotion}", json=percent_off("Coffee 20 % off", 2000))
            assert edit_pending.status_code == 409 and edit_pending.json()["state"] == "pending"

            approved = await bob.post(f"/api/promotions/{promotion}/approve", json={"revision": 1, "reason": "fine for December"})
            assert approved.status_code == 200, approved.text
            live = approved.json()
            assert (live["state"], live["live_revision"]) == ("live", 1)
            assert live["decisions"] == [{"revision": 1, "decision": "approved", "by": "bob",
                                          "reason": "fine for December", "at": live["decisions"][0]["at"]}]
            version = await _version(url)
            assert version == before + 1 and live["catalog_version"] == version

            again = await bob.post(f"/api/promotions/{promotion}/approve", json={"revision": 1})
            assert again.status_code == 409 and again.json()["code"] == "invalid_state_transition"

            # A live promotion's schedule narrows at once (a new revision, live); widening it is an edit.
            narrowed = await ada.post(f"/api/promotions/{promotion}/schedule",
                                      json={"starts_at": None, "ends_at": "2099-01-01T00:00:00+01:00"})
            assert narrowed.status_code == 200, narrowed.text
            assert (narrowed.json()["state"], narrowed.json()["live_revision"]) == ("live", 2)
            assert narrowed.json()["promotion"]["ends_at_ms"] == 4070905200000
            widened = await ada.post(f"/api/promotions/{promotion}/schedule", json={"starts_at": None, "ends_at": None})
            assert widened.status_code == 409 and "narrowed" in widened.json()["error"]

            revisions = (await bob.get(f"/api/promotions/{promotion}/revisions")).json()["items"]
            assert [r["revision"] for r in revisions] == [1, 2]
            assert revisions[0]["live"][0]["until_version"] == revisions[1]["live"][0]["from_version"] == version + 1

            ended = await bob.post(f"/api/promotions/{promotion}/end", json={"reason": "sold out"})
            assert ended.status_code == 200 and ended.json()["state"] == "ended", ended.text
            assert await _version(url) == version + 2
            listed = (await bob.get("/api/promotions", params={"state": "ended"})).json()
            assert [item["id"] for item in listed["items"]] == [promotion] and listed["next"] is None
        nursery.cancel_scope.cancel()

    audit = await query(url, "SELECT actor, action, details FROM audit_records WHERE tenant = 'demo'"
                             " AND action LIKE 'promotion.%' ORDER BY seq")
    assert [(row["actor"], row["action"]) for row in audit] == [
        ("ada", "promotion.settings_set"), ("ada", "promotion.created"), ("ada", "promotion.submitted"),
        ("bob", "promotion.approved"), ("ada", "promotion.scheduled"), ("bob", "promotion.ended")]
    assert '"cost_minor": 1500' in audit[3]["details"] and '"author": "ada"' in audit[3]["details"]
    with pytest.raises(asyncpg.PostgresError, match="immutable"):
        await query(url, "UPDATE promotion_revisions SET body = '{}' WHERE tenant = 'demo'")


async def test_a_cheap_promotion_goes_live_at_submit(hub_config: HubConfig) -> None:
    url = hub_config.database_url
    async with trio.open_nursery() as nursery:
        hub = await nursery.start(run_hub, hub_config)
        await promotion_world(url)
        await past_sales(url, "store-001", 3)
        await add_user(url, "ada", grant("tenant_admin"))
        async with signed_in(hub.url, "ada") as ada:
            promotion = (await ada.post("/api/promotions", json=percent_off("Coffee 5 % off", 500))).json()["id"]
            submitted = await ada.post(f"/api/promotions/{promotion}/submit", json={})
            assert submitted.status_code == 200, submitted.text
            body = submitted.json()
            assert body["state"] == "live" and body["simulation"]["cost_minor"] == 150  # 3 x 0.50, threshold 500.00
            assert body["simulation"]["needs_approval"] is False
        nursery.cancel_scope.cancel()


async def test_region_admins_work_within_their_regions_and_managers_only_read(hub_config: HubConfig) -> None:
    url = hub_config.database_url
    async with trio.open_nursery() as nursery:
        hub = await nursery.start(run_hub, hub_config)
        await promotion_world(url)
        await add_user(url, "ada", grant("tenant_admin"))
        await add_user(url, "rita", grant("regional_admin", "north"))
        await add_user(url, "mona", grant("store_manager", "store-003"))
        async with signed_in(hub.url, "ada") as ada, signed_in(hub.url, "rita") as rita, \
                signed_in(hub.url, "mona") as mona:
            everywhere = (await ada.post("/api/promotions", json=percent_off("All stores", 500))).json()["id"]
            south = (await ada.post("/api/promotions", json=percent_off("South", 500, regions=["south"]))).json()["id"]
            north = await rita.post("/api/promotions", json=percent_off("North", 500, regions=["north"]))
            assert north.status_code == 201, north.text
            store = await rita.post("/api/promotions", json=percent_off("One store", 500, stores=["store-002"]))
            assert store.status_code == 201, store.text
            for body in (percent_off("Everywhere", 500), percent_off("South too", 500, regions=["north", "south"]),
                         percent_off("A south store", 500, stores=["store-003"])):
                refused = await rita.post("/api/promotions", json=body)
                assert refused.status_code == 403 and "promotions.manage" in refused.json()["error"], refused.text
            # Not hers to change: tenant-wide; not hers to see at all: the south's.
            assert (await rita.put(f"/api/promotions/{everywhere}", json=percent_off("x", 100))).status_code == 403
            assert (await rita.get(f"/api/promotions/{south}")).status_code == 404
            assert (await rita.post(f"/api/promotions/{south}/simulate", json={})).status_code == 404
            moved = await rita.put(f"/api/promotions/{north.json()['id']}",
                                   json=percent_off("North", 500, regions=["south"]))
            assert moved.status_code == 403
            seen = {item["name"] for item in (await rita.get("/api/promotions")).json()["items"]}
            assert seen == {"All stores", "North", "One store"}
            # A manager of a south store reads what applies there, changes nothing.
            assert {item["name"] for item in (await mona.get("/api/promotions")).json()["items"]} == \
                {"All stores", "South"}
            assert (await mona.post("/api/promotions", json=percent_off("Mine", 500))).status_code == 403
            assert (await mona.post(f"/api/promotions/{south}/simulate", json={})).status_code == 403
            assert (await rita.put("/api/promotions/settings", json={
                "approval_threshold_minor": 0, "timezone": "UTC", "simulation_days": 1})).status_code == 403
            bad = await ada.post("/api/promotions", json=percent_off("Too much", 10001))
            assert bad.status_code == 422 and "value" in bad.json()["error"]
            bad_zone = await ada.put("/api/promotions/settings", json={
                "approval_threshold_minor": 0, "timezone": "Mars/Olympus", "simulation_days": 1})
            assert bad_zone.status_code == 422
        nursery.cancel_scope.cancel()
    assert (await query(url, "SELECT count(*) FROM promotions"))[0][0] == 4


async def test_the_simulation_counts_what_the_promotions_in_force_then_already_gave(hub_config: HubConfig) -> None:
    """A 20 % exclusive promotion live for the last 10 days: a 10 % proposal adds nothing to the sales it covered (the
    engine picks the exclusive one, best for the customer) and 1.00 to each sale before it went live."""
    url = hub_config.database_url
    async with trio.open_nursery() as nursery:
        hub = await nursery.start(run_hub, hub_config)
        await promotion_world(url)
        await past_sales(url, "store-001", 6, days_ago=5)
        await past_sales(url, "store-001", 4, days_ago=20)
        await add_user(url, "ada", grant("tenant_admin"))
        async with signed_in(hub.url, "ada") as ada:
            exclusive = (await ada.post("/api/promotions", json=percent_off("Coffee 20 % alone", 2000,
                                                                            stacking="exclusive"))).json()["id"]
            assert (await ada.post(f"/api/promotions/{exclusive}/submit", json={})).json()["state"] == "live"
            await query(url, "UPDATE promotion_live SET live_from = now() - interval '10 days'")
            proposal = (await ada.post("/api/promotions", json=percent_off("Coffee 10 % off", 1000))).json()["id"]
            figures = (await ada.post(f"/api/promotions/{proposal}/simulate", json={})).json()
            assert (figures["sales"], figures["sales_touched"], figures["cost_minor"]) == (10, 4, 400), figures
            again = (await ada.post(f"/api/promotions/{proposal}/simulate", json={})).json()
            assert {k: again[k] for k in ("cost_minor", "per_store", "sales_touched")} == \
                {k: figures[k] for k in ("cost_minor", "per_store", "sales_touched")}
        nursery.cancel_scope.cancel()


async def test_a_rejected_promotion_goes_back_to_draft_and_an_edit_needs_a_new_simulation(hub_config: HubConfig) -> None:
    url = hub_config.database_url
    async with trio.open_nursery() as nursery:
        hub = await nursery.start(run_hub, hub_config)
        await promotion_world(url)
        await past_sales(url, "store-001", 2)
        for login in ("ada", "bob"):
            await add_user(url, login, grant("tenant_admin"))
        async with signed_in(hub.url, "ada") as ada, signed_in(hub.url, "bob") as bob:
            await ada.put("/api/promotions/settings", json={"approval_threshold_minor": 0, "timezone": "UTC",
                                                            "simulation_days": 7})
            promotion = (await ada.post("/api/promotions", json=percent_off("Coffee 10 % off", 1000))).json()["id"]
            assert (await ada.post(f"/api/promotions/{promotion}/submit", json={})).json()["state"] == "pending"
            rejected = await bob.post(f"/api/promotions/{promotion}/reject", json={"reason": "too generous"})
            assert rejected.status_code == 200 and rejected.json()["state"] == "draft", rejected.text
            assert rejected.json()["decisions"][0]["decision"] == "rejected"
            edited = (await ada.put(f"/api/promotions/{promotion}", json=percent_off("Coffee 5 % off", 500))).json()
            assert edited["revision"] == 2 and edited["simulation"] is None  # the old figures were revision 1's
            resubmitted = (await ada.post(f"/api/promotions/{promotion}/submit", json={})).json()
            assert (resubmitted["state"], resubmitted["simulation"]["revision"]) == ("pending", 2)
            assert resubmitted["simulation"]["cost_minor"] == 100  # 2 x 5 % of 9.98
            # Bob saw revision 1; approving it now would put revision 2 live unseen: refused, nothing changes.
            stale = await bob.post(f"/api/promotions/{promotion}/approve", json={"revision": 1})
            assert stale.status_code == 409 and "changed since you saw it" in stale.json()["error"], stale.text
            unnamed = await bob.post(f"/api/promotions/{promotion}/approve", json={})
            assert unnamed.status_code == 422 and "revision" in unnamed.text, unnamed.text
            assert (await bob.get(f"/api/promotions/{promotion}")).json()["state"] == "pending"
            approved = await bob.post(f"/api/promotions/{promotion}/approve", json={"revision": 2})
            assert approved.json()["live_revision"] == 2, approved.text
        nursery.cancel_scope.cancel()
    actions = [row[0] for row in await query(url, "SELECT action FROM audit_records WHERE action LIKE 'promotion.%'"
                                                  " ORDER BY seq")]
    assert actions == ["promotion.settings_set", "promotion.created", "promotion.submitted", "promotion.rejected",
                       "promotion.edited", "promotion.submitted", "promotion.approved"]
