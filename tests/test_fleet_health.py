"""Fleet health end to end: a real edge reports to a real hub over an authorized NATS, into PostgreSQL, and a
signed-in admin reads it from the console API: version, devices, open tills, last sale, the outbox growing while
the hub's stream refuses events, a printer unplugged, and the store marked offline once it stops."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

import httpx
import trio
from nats.js.api import StreamConfig

from edge.app import run_edge
from hub.app import run_hub
from mocks.network_printer import MockNetworkPrinter
from novapos.__about__ import VERSION
from novapos.config import HubConfig, StoreConfig
from novapos.demo.embedded_nats import EmbeddedNats
from novapos.wire.subjects import EVENTS_STREAM
from tests.conftest import query, wait_until
from tests.fleet import fleet_world
from tests.identity import add_user, grant, signed_in
from tests.pos import COFFEE, log_in_at, sell


async def _stream_full(nats_server: EmbeddedNats, full: bool) -> None:
    """Fill the events stream (its message limit set to what it holds; discard=new refuses what stores send
    next), or lift the limit again."""
    async def run() -> None:
        link = nats_server.hub_link()
        await link.connect()
        info = await link.js.stream_info(EVENTS_STREAM)
        config: StreamConfig = info.config
        config.max_msgs = max(info.state.messages, 1) if full else -1
        await link.js.update_stream(config)
        await link.close()
    await trio.to_thread.run_sync(asyncio.run, run())


async def test_a_running_edge_reports_its_health_and_goes_offline_when_it_stops(
        hub_config: HubConfig, store_config: StoreConfig, nats_server: EmbeddedNats, database_url: str,
        printer: MockNetworkPrinter, http: httpx.AsyncClient) -> None:
    await fleet_world(database_url)
    await add_user(database_url, "ada", grant("tenant_admin"))
    hub_config = replace(hub_config, fleet_offline_after_s=3)
    store_config = replace(store_config, health_interval_s=1)
    async with trio.open_nursery() as nursery:
        hub = await nursery.start(run_hub, hub_config)
        edge_scope = trio.CancelScope()

        async def edge_until_stopped(task_status: trio.TaskStatus[Any] = trio.TASK_STATUS_IGNORED) -> None:
            with edge_scope:
                await run_edge(store_config, task_status=task_status)
        edge = await nursery.start(edge_until_stopped)
        async with signed_in(hub.url, "ada") as ada:
            async def store() -> dict[str, Any]:
                answer = await ada.get("/api/fleet/store-001")
                assert answer.status_code == 200, answer.text
                found: dict[str, Any] = answer.json()
                return found

            async def when(check: Any) -> dict[str, Any]:
                async def met() -> dict[str, Any] | None:
                    found = await store()
                    return found if check(found) else None
                result: dict[str, Any] = await wait_until(met, timeout=10)
                return result

            with trio.fail_after(10):
                up = await when(lambda s: s["online"] and any(d["state"] == "ready" for d in s["devices"]))
            assert up["version"] == VERSION and up["outbox"] == {"depth": 0, "oldest_age_s": None}
            assert {(d["name"], d["kind"]) for d in up["devices"]} == {("receipt-printer", "printer"),
                                                                         ("drawer-1", "drawer")}
            assert abs(up["clock_skew_s"]) < 2 and up["open_tills"] == [] and up["alerts"] == []

            receipt = await sell(http, edge.url, [(COFFEE, 1)])
            sold = await when(lambda s: s["open_tills"] == ["till-1"] and s["last_sale"] is not None)
            assert sold["last_sale"]["seq"] == receipt["seq"]

            await _stream_full(nats_server, True)  # the stream is full: the store's next sales wait in its outbox
            for _ in range(3):
                await sell(http, edge.url, [(COFFEE, 1)])
            backlog = await when(lambda s: s["outbox"]["depth"] >= 3)
            assert backlog["outbox"]["oldest_age_s"] is not None and backlog["outbox"]["oldest_age_s"] >= 0
            await _stream_full(nats_server, False)
            await when(lambda s: s["outbox"]["depth"] == 0)

            printer.set_online(False)
            with trio.fail_after(6):  # the manager's debounce, then the next look (1 s)
                down = await when(lambda s: any(d["name"] == "receipt-printer" and d["down"] for d in s["devices"]))
            assert any(alert.startswith("device receipt-printer (printer) is") for alert in down["alerts"])
            page = (await ada.get("/api/fleet")).json()
            assert page["items"][0]["store"] == "store-001" and page["items"][0]["alerts"]
            printer.set_online(True)
            await when(lambda s: not s["alerts"])

            edge_scope.cancel()
            stopped = trio.current_time()
            gone = await when(lambda s: not s["online"])
            assert trio.current_time() - stopped < 3 + 3, "not marked offline within offline_after_s + margin"
            assert gone["alerts"][0].startswith("offline since")

            history = (await ada.get("/api/fleet/store-001")).json()["history"]
            kinds = [entry["kind"] for entry in history]
            assert kinds[0] == "offline" and kinds.count("offline") == 1 and "online" in kinds and "sample" in kinds
            assert any(e["kind"] == "device" and e["details"]["name"] == "receipt-printer"
                       and e["details"]["state"] != "ready" for e in history)

        async def exported() -> bool:  # the gauges follow the fleet table within GAUGES_EVERY_S
            metrics = (await http.get(f"{hub.url}/metrics")).text
            return 'novapos_hub_fleet_online{store="store-001",tenant="demo"} 0.0' in metrics
        await wait_until(exported, timeout=8)
        metrics = (await http.get(f"{hub.url}/metrics")).text
        assert 'novapos_hub_fleet_online{store="store-002"' not in metrics  # never reported: no series, no page
        assert 'novapos_hub_fleet_devices_down{store="store-001",tenant="demo"} 0.0' in metrics
        nursery.cancel_scope.cancel()
    rows = await query(database_url, "SELECT count(*) AS n FROM fleet_history WHERE kind = 'offline'")
    assert rows[0]["n"] == 1


async def test_a_change_is_reported_at_once_whatever_the_interval(
        hub_config: HubConfig, store_config: StoreConfig, database_url: str, printer: MockNetworkPrinter,
        http: httpx.AsyncClient) -> None:
    """With an hour between periodic reports, opening a till and losing the printer still reach the hub within
    seconds, and a sale alone (its event leaves the outbox in milliseconds) sends nothing."""
    await fleet_world(database_url)
    async with trio.open_nursery() as nursery:
        await nursery.start(run_hub, hub_config)
        edge = await nursery.start(run_edge, replace(store_config, health_interval_s=3600))

        async def status() -> Any:
            rows = await query(database_url, "SELECT online, open_tills, devices_down, last_seen FROM fleet_status"
                                             " WHERE store = 'store-001'")
            return rows[0] if rows and rows[0]["online"] else None
        started = await wait_until(status, timeout=10)
        await trio.sleep(2)  # the devices come up after the first report: that change is reported too
        settled = await status()
        await sell(http, edge.url, [(COFFEE, 1)])
        await log_in_at(http, f"{edge.url}/api/tills/till-2", "bob")
        opened = await wait_until(lambda: _when(status, lambda s: s["open_tills"] == ["till-1", "till-2"]), timeout=4)
        assert opened["last_seen"] > settled["last_seen"] >= started["last_seen"]
        await sell(http, edge.url, [(COFFEE, 2)])  # till-1 was open already: nothing a person needs changed
        await trio.sleep(2.5)
        assert (await status())["last_seen"] == opened["last_seen"]
        printer.set_online(False)
        down = await wait_until(lambda: _when(status, lambda s: s["devices_down"] > 0), timeout=6)
        assert down["last_seen"] > opened["last_seen"]
        nursery.cancel_scope.cancel()


async def _when(status: Any, check: Any) -> Any:
    found = await status()
    return found if found is not None and check(found) else None
