"""A drawer session end to end: the web till API -> outbox (cash journal) -> JetStream -> the hub's cash domain ->
PostgreSQL -> the console API; and a sale that reaches the hub after its Z report lands, attached and flagged."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import UTC, datetime

import httpx
import trio

from edge.app import run_edge
from hub.app import run_hub
from novapos.config import HubConfig, StoreConfig
from novapos.config.cash import CashConfig
from novapos.demo.embedded_nats import EmbeddedNats
from tests.conftest import query, wait_until
from tests.console_access import sign_in_admin
from tests.events import SUBJECT, publish, sale_event
from tests.pos import COFFEE, MANAGER_OVERRIDE, MILK, log_in, sell


async def test_a_shift_reaches_the_console_and_a_late_sale_is_flagged(
        store_config: StoreConfig, hub_config: HubConfig, database_url: str, nats_server: EmbeddedNats,
        http: httpx.AsyncClient) -> None:
    config = dataclasses.replace(store_config, cash=CashConfig(tolerance_minor=0))
    async with trio.open_nursery() as nursery:
        hub = await nursery.start(run_hub, hub_config)
        edge = await nursery.start(run_edge, config)
        drawer = f"{edge.url}/api/tills/till-1/drawer-session"
        await log_in(http, edge.url)
        session = (await http.post(drawer, json={"float": {"1000": 10}})).json()["drawer_session"]["id"]
        sales = [await sell(http, edge.url, [(COFFEE, 1)], cash=1000), await sell(http, edge.url, [(MILK, 2)])]
        assert all(sale["drawer_session"] == session for sale in sales)
        moved = await http.post(f"{drawer}/moves", json={"kind": "pay_out", "amount_minor": 300, "reason": "milk",
                                                          "override": MANAGER_OVERRIDE})  # alice is a cashier
        assert moved.status_code == 200, moved.text
        expected = 10000 + 499 + 258 - 300
        z = await http.post(f"{drawer}/close", json={"counted": {"1000": 10, "200": 2}, "override": MANAGER_OVERRIDE})
        assert z.status_code == 200, z.text
        assert z.json()["difference"] == 10400 - expected

        rows = await wait_until(lambda: query(database_url, "SELECT * FROM z_reports WHERE session = $1", session))
        assert (rows[0]["z_number"], rows[0]["approver"], rows[0]["difference_minor"]) == (1, "manager", 10400 - expected)
        attached = await query(database_url, "SELECT event_id::text, late FROM drawer_sales WHERE session = $1 "
                                             "ORDER BY seq", session)
        assert [(row["event_id"], row["late"]) for row in attached] == [(sale["sale"], False) for sale in sales]
        moves = await query(database_url, "SELECT kind, amount_minor, reason, actor FROM drawer_moves")
        assert [tuple(row) for row in moves] == [("pay_out", 300, "milk", "alice")]
        audited = await wait_until(lambda: query(database_url, "SELECT type FROM inbox WHERE type = 'audit.recorded'"))
        assert len(audited) == 2  # the pay-out and the close beyond tolerance

        # A sale the store committed before the close, met by the hub after the Z report (held, then redriven).
        late = sale_event(seq=1000)
        late = dataclasses.replace(late, ts=int(datetime.now(UTC).timestamp() * 1000),
                                   body={**late.body, "drawer_session": session})
        await publish(nats_server, [(SUBJECT, late.encode(), {"Nats-Msg-Id": str(late.id)})])
        flagged = await wait_until(lambda: query(database_url, "SELECT late FROM drawer_sales WHERE event_id = $1",
                                                 late.id))
        assert flagged[0]["late"] is True
        assert await query(database_url, "SELECT 1 FROM sales WHERE event_id = $1", late.id)  # it still lands

        await sign_in_admin(http, hub.url, database_url)
        today = datetime.now(UTC).strftime("%Y-%m-%d")
        page = (await http.get(f"{hub.url}/api/drawer-sessions", params={"store": "store-001", "day": today})).json()
        assert [(item["session"], item["sales"], item["late_sales"], item["z_number"]) for item in page["items"]] == [
            (session, 3, 1, 1)] and page["next"] is None
        assert (await http.get(f"{hub.url}/api/drawer-sessions", params={"day": "2001-01-01"})).json()["items"] == []
        one = (await http.get(f"{hub.url}/api/drawer-sessions/{session}")).json()
        assert one["z"]["sales"]["count"] == 2 and one["z"]["pay_outs"]["total"]["minor"] == 300
        assert [move["kind"] for move in one["moves"]] == ["pay_out"]
        assert [uuid.UUID(sale["event_id"]) for sale in one["late"]] == [late.id]
        assert (await http.get(f"{hub.url}/api/drawer-sessions/{uuid.uuid4()}")).status_code == 404
        for day in ("yesterday", "2026-13-01", "2026-1-1", "2026-12-01T00:00", "\x00", "9" * 5000, "２０２６-12-01"):
            refused = await http.get(f"{hub.url}/api/drawer-sessions", params={"day": day})
            assert refused.status_code == 400 and "YYYY-MM-DD" in refused.json()["error"], (day, refused.text)
        for params in ({"store": "o-1"}, {"tenant": "other"}):
            assert (await http.get(f"{hub.url}/api/drawer-sessions", params=params)).status_code == 404
        assert (await http.get(f"{hub.url}/api/drawer-sessions", params={"shop": "x"})).status_code == 400
        assert (await http.get(f"{hub.url}/api/drawer-sessions", params={"after": "x"})).status_code == 400
        nursery.cancel_scope.cancel()
