"""The console's fleet API against a real hub and PostgreSQL: each user sees the stores of their reach only
(another region's store is a 403, another tenant's a 404), alerts come first, keyset pages hold that order, bad
parameters are refused with a sentence, and the page is an index range that never reads the history."""

from __future__ import annotations

import json
from typing import Any

import asyncpg
import httpx
import trio

from hub.app import run_hub
from hub.fleet.routes import HISTORY_SQL, PAGE_SQL
from novapos.config import HubConfig
from novapos.wire.health import Device
from tests.conftest import query
from tests.fleet import a_report, fleet_world, report
from tests.identity import add_user, grant, signed_in
from tests.stock_world import on_database


async def test_each_user_sees_their_reach_alerts_first_in_stable_pages(
        hub_config: HubConfig, database_url: str, http: httpx.AsyncClient) -> None:
    await fleet_world(database_url)
    await add_user(database_url, "ada", grant("tenant_admin"))
    await add_user(database_url, "nora", grant("regional_admin", "north"))
    await add_user(database_url, "sue", grant("supervisor", "store-003"))
    await add_user(database_url, "oz", grant("tenant_admin"), tenant="other")
    assert await report(database_url, "demo", "store-001", a_report(open_tills=("till-1",))) is None
    assert await report(database_url, "demo", "store-002", a_report(
        devices=(Device("receipt-printer", "printer", "paper_out", "out of paper"),),
        outbox_depth=12, oldest_unsent_ms=11 * 60 * 1000), skew_ms=-90_000) is None
    assert await report(database_url, "demo", "store-003", a_report()) is None
    assert await report(database_url, "demo", "nowhere", a_report()) == (
        "the hub does not know store 'nowhere' of tenant 'demo': it must be provisioned")
    async with trio.open_nursery() as nursery:
        hub = await nursery.start(run_hub, hub_config)
        assert (await http.get(f"{hub.url}/api/fleet")).status_code == 401
        assert (await http.get(f"{hub.url}/api/fleet/store-001")).status_code == 401

        async with signed_in(hub.url, "ada") as ada:
            page = (await ada.get("/api/fleet")).json()
            assert [item["store"] for item in page["items"]] == ["store-002", "store-001", "store-003"]
            assert page["next"] is None
            two = page["items"][0]
            assert two["alerts"] == [
                "backlog older than 5 min: the oldest unsent event is 11 min old (12 waiting); its sales are not "
                "reaching the hub",
                "device receipt-printer (printer) is paper out: out of paper",
                "clock skew -90 s (over 60 s): check NTP on the store box"]
            assert two["region"] == "north" and two["name"] == "Two" and two["devices_down"] == 1
            assert page["items"][1]["open_tills"] == ["till-1"] and page["items"][1]["alerts"] == []
            walked, after = [], None
            while True:
                answer = (await ada.get("/api/fleet", params={"limit": 1, **({"after": after} if after else {})})).json()
                walked += [item["store"] for item in answer["items"]]
                if (after := answer["next"]) is None:
                    break
            assert walked == ["store-002", "store-001", "store-003"]
            south = (await ada.get("/api/fleet", params={"region": "south"})).json()
            assert [item["store"] for item in south["items"]] == ["store-003"]
            assert (await ada.get("/api/fleet", params={"status": "offline"})).json()["items"] == []
            assert (await ada.get("/api/fleet", params={"region": "west"})).status_code == 404
            assert (await ada.get("/api/fleet", params={"tenant": "other"})).status_code == 404
            assert (await ada.get("/api/fleet/o-1")).status_code == 404
            await query(hub_config.database_url, "INSERT INTO stores (tenant, store, region, name)"
                                                 " VALUES ('demo', 'store-new', 'south', 'New')")
            new = (await ada.get("/api/fleet/store-new")).json()  # before the watch enrols it
            assert (new["online"], new["last_seen"], new["history"]) == (False, None, [])
            assert new["alerts"][0].startswith("has never reported")
            await query(hub_config.database_url, "UPDATE stores SET status = 'revoked' WHERE store = 'store-new'")
            assert (await ada.get("/api/fleet/store-new")).status_code == 404
            for params, says in (({"limit": "0"}, "limit"), ({"limit": "201"}, "limit"), ({"limit": "9" * 5000}, "limit"),
                                 ({"limit": "1.5"}, "limit"), ({"status": "sleepy"}, "status"),
                                 ({"after": "2~store-001"}, "after"), ({"after": "0~bad store"}, "after"),
                                 ({"region": "no\x00rth"}, "region")):
                refused = await ada.get("/api/fleet", params=params)
                assert refused.status_code in (400, 422) and says in refused.json()["error"], (params, refused.text)
            for bad in ("%00", "x" * 65, "a.b", "%E2%80%AE"):
                assert (await ada.get(f"/api/fleet/{bad}")).status_code == 404, bad
            assert (await ada.get("/api/fleet/store-001", params={"before": "0"})).status_code in (400, 422)
            detail = (await ada.get("/api/fleet/store-002")).json()
            assert detail["store"] == "store-002" and detail["alerts"] == two["alerts"]
            assert [entry["kind"] for entry in detail["history"]] == ["sample", "device", "online"]
            assert detail["history"][1]["details"] == {"name": "receipt-printer", "kind": "printer", "state": "paper_out",
                                                       "detail": "out of paper", "was": None}
            newest = (await ada.get("/api/fleet/store-002", params={"limit": 2})).json()
            older = (await ada.get("/api/fleet/store-002", params={"before": newest["next"]})).json()
            assert [e["kind"] for e in newest["history"] + older["history"]] == ["sample", "device", "online"]

        async with signed_in(hub.url, "nora") as nora:
            mine = (await nora.get("/api/fleet")).json()
            assert [item["store"] for item in mine["items"]] == ["store-002", "store-001"]
            assert (await nora.get("/api/fleet/store-001")).status_code == 200
            refused = await nora.get("/api/fleet/store-003")
            assert refused.status_code == 403 and "nora" in refused.json()["error"]
            assert (await nora.get("/api/fleet", params={"region": "south"})).status_code == 403
            assert (await nora.get("/api/fleet/o-1")).status_code == 404
            assert (await nora.get("/api/fleet", params={"region": "west"})).status_code == 404

        async with signed_in(hub.url, "sue") as sue:
            assert [item["store"] for item in (await sue.get("/api/fleet")).json()["items"]] == ["store-003"]
            assert [item["store"] for item in (await sue.get("/api/fleet", params={"region": "south"})).json()[
                "items"]] == ["store-003"]
            assert (await sue.get("/api/fleet/store-001")).status_code == 403
            assert (await sue.get("/api/fleet", params={"region": "north"})).status_code == 403

        async with signed_in(hub.url, "oz") as oz:
            other = (await oz.get("/api/fleet")).json()["items"]
            assert [(item["store"], item["online"]) for item in other] == [("o-1", False)]  # enrolled, never reported
            assert other[0]["alerts"][0].startswith("has never reported")
            assert (await oz.get("/api/fleet/store-001")).status_code == 404
        nursery.cancel_scope.cancel()


async def test_the_fleet_page_and_a_stores_history_are_index_ranges(database_url: str) -> None:
    """At 5,000 stores and 200,000 history rows, the page walks fleet_status's (tenant, rank, store) index and
    never touches the history; a store's history walks its (tenant, store, id) index."""
    await fleet_world(database_url)

    async def explain(pool: asyncpg.Pool) -> tuple[str, str]:
        async with pool.acquire() as conn:
            await conn.execute(
                "INSERT INTO stores (tenant, store, region, name) SELECT 'demo', 'big-' || n, 'north', 'Big ' || n"
                " FROM generate_series(1, 5000) n;"
                "INSERT INTO fleet_status (tenant, store, online, rank, last_seen, devices)"
                " SELECT tenant, store, true, 1, now(), '[]' FROM stores ON CONFLICT DO NOTHING;"
                "INSERT INTO fleet_history (tenant, store, at, kind, details) SELECT 'demo', 'big-' || (n % 5000 + 1),"
                " now() - (n % 86400) * interval '1 second', 'sample', '{}' FROM generate_series(1, 200000) n;"
                "ANALYZE stores; ANALYZE fleet_status; ANALYZE fleet_history")
            plan = await conn.fetchval(f"EXPLAIN (FORMAT JSON) {PAGE_SQL}", "demo", None, None, None, 0, "big-1", 50)
            history = await conn.fetchval(f"EXPLAIN (FORMAT JSON) {HISTORY_SQL}", "demo", "big-7", None, 200)
            return plan, history
    plan, history = await on_database(database_url, explain)
    assert "fleet_status_page" in plan and "fleet_history" not in plan, plan
    assert "Seq Scan" not in _scans_of(json.loads(plan), "fleet_status"), plan
    assert "fleet_history_by_store" in history and "Seq Scan" not in history, history


def _scans_of(plan: Any, table: str) -> list[str]:
    """The node types that read `table` in an EXPLAIN (FORMAT JSON) plan."""
    found = []
    stack = [plan[0]["Plan"]]
    while stack:
        node = stack.pop()
        if node.get("Relation Name") == table:
            found.append(node["Node Type"])
        stack.extend(node.get("Plans", []))
    return found
