"""A till asks its store's edge for an item's stock: the edge asks the hub over NATS request/reply and answers
in milliseconds, and with NATS gone it answers at once "not known while offline" with the last answer it had,
never an error page."""

from __future__ import annotations

import time
from typing import Any

import httpx
import trio

from edge.app import run_edge
from hub.app import run_hub
from novapos.config import HubConfig, StoreConfig
from novapos.demo.embedded_nats import EmbeddedNats
from tests.conftest import wait_until
from tests.console_access import sign_in_admin
from tests.pos import log_in
from tests.stock_world import build_world


async def test_a_till_sees_stock_here_and_nearby_and_not_known_while_offline(
        hub_config: HubConfig, store_config: StoreConfig, nats_server: EmbeddedNats, database_url: str,
        http: httpx.AsyncClient) -> None:
    await build_world(database_url)
    async with trio.open_nursery() as nursery:
        edge = await nursery.start(run_edge, store_config)
        await log_in(http, edge.url)  # stock is asked behind the till login
        hub_scope = trio.CancelScope()

        async def hub_until_stopped(task_status: trio.TaskStatus[Any] = trio.TASK_STATUS_IGNORED) -> None:
            with hub_scope:
                await run_hub(hub_config, task_status=task_status)
        hub = await nursery.start(hub_until_stopped)
        await sign_in_admin(http, hub.url, database_url)
        for location, quantity in (("s1-floor", 4), ("wh-north", 30)):
            response = await http.post(f"{hub.url}/api/stock/receipts",
                                       json={"location": location, "sku": "COF-250", "quantity": quantity})
            assert response.status_code == 200, response.text

        async def answered() -> dict[str, Any] | None:
            found: dict[str, Any] = (await http.get(f"{edge.url}/api/stock/COF-250")).json()
            return found if found["status"] == "known" else None
        await wait_until(answered)
        timings = []
        for _ in range(20):
            started = time.perf_counter()
            known = (await http.get(f"{edge.url}/api/stock/COF-250")).json()
            timings.append(time.perf_counter() - started)
        assert known["status"] == "known" and known["in_catalog"] is True
        assert known["message"] == "4 available here, 30 nearby"
        assert [(s["location"], s["own"], s["available"]) for s in known["locations"]] == [
            ("s1-back", True, 0), ("s1-floor", True, 4), ("s2-floor", False, 0), ("wh-north", False, 30)]
        assert sorted(timings)[10] < 0.1, f"median {sorted(timings)[10]:.3f} s: not milliseconds"

        hub_scope.cancel()  # NATS stays: no hub answers
        await wait_until(lambda: _no_hub(http, edge.url))

        nats_server.stop()
        started = time.perf_counter()
        offline = await http.get(f"{edge.url}/api/stock/COF-250")
        waited = time.perf_counter() - started
        assert offline.status_code == 200 and waited < 2.5, (offline.status_code, waited)
        answer = offline.json()
        assert answer["status"] == "offline" and answer["message"].startswith("not known while offline")
        assert answer["locations"] == [] and answer["last_known"]["locations"] == known["locations"]
        never = (await http.get(f"{edge.url}/api/stock/COF-500")).json()
        assert never["status"] == "offline" and never["last_known"] is None
        bad = await http.get(f"{edge.url}/api/stock/bad%20sku")
        assert bad.status_code == 422 and "sku" in bad.json()["error"]
        nursery.cancel_scope.cancel()


async def _no_hub(http: httpx.AsyncClient, url: str) -> bool:
    started = time.perf_counter()
    answer = (await http.get(f"{url}/api/stock/COF-250")).json()
    assert time.perf_counter() - started < 2.5
    return answer["status"] == "offline" and answer["message"].startswith("not known while offline: no hub is answering")
