"""A store's clock is never a reason to refuse its sales: the hub records each store's skew against its
own receive time (console and metrics) and flags implausible sale times for review."""

from __future__ import annotations

import dataclasses
import time

import httpx
import trio
from prometheus_client import REGISTRY

from hub.app import run_hub
from hub.ingest.store_stats import EVENT_DELAY
from novapos.config import HubConfig
from novapos.demo.embedded_nats import EmbeddedNats
from novapos.wire.envelope import decode
from tests.conftest import query, wait_until
from tests.console_access import sign_in_admin
from tests.events import SUBJECT, publish, sale_event

DAY_MS = 86_400_000


def test_the_envelope_refuses_no_plausible_or_implausible_time_a_column_can_hold() -> None:
    for ts in (0, -DAY_MS, int(time.time() * 1000) + 400 * DAY_MS, 253_402_300_799_000):  # 1970 .. 9999-12-31
        assert decode(dataclasses.replace(sale_event(), ts=ts).encode()).ts == ts


async def test_skew_is_recorded_per_store_and_implausible_times_are_flagged_not_refused(
        hub_config: HubConfig, nats_server: EmbeddedNats, database_url: str, http: httpx.AsyncClient) -> None:
    now_ms = int(time.time() * 1000)
    rtc_lost = dataclasses.replace(sale_event(seq=1), ts=0)                                  # 1970: no RTC, no NTP
    tomorrow_plus = dataclasses.replace(sale_event(seq=2), ts=now_ms + 2 * DAY_MS)          # a day and more ahead
    fine = dataclasses.replace(sale_event(seq=3), ts=now_ms - 90_000)                        # 90 s behind
    other = dataclasses.replace(sale_event(seq=1, store="store-002"), ts=now_ms + 30_000)   # 30 s ahead
    async with trio.open_nursery() as nursery:
        hub = await nursery.start(run_hub, hub_config)
        await publish(nats_server, [(SUBJECT, e.encode(), None) for e in (rtc_lost, tomorrow_plus, fine)])
        await publish(nats_server, [(SUBJECT.replace("store-001", "store-002"), other.encode(), None)])
        await wait_until(lambda: _count(database_url, 4))
        flagged = {row["seq"]: row["clock_suspect"] for row in await query(
            database_url, "SELECT seq, clock_suspect FROM sales WHERE store = 'store-001'")}
        assert flagged == {1: True, 2: True, 3: False}
        assert (await query(database_url, "SELECT count(*) AS n FROM dead_letters"))[0]["n"] == 0

        await sign_in_admin(http, hub.url, database_url)
        stores = {s["store"]: s for s in (await http.get(f"{hub.url}/api/stores")).json()}
        sales = (await http.get(f"{hub.url}/api/sales")).json()
        assert 85 <= stores["store-001"]["clock_skew_s"] <= 120        # the latest event (seq 3) is 90 s behind
        assert -35 <= stores["store-002"]["clock_skew_s"] <= 0          # 30 s ahead: negative skew
        assert {s["seq"]: s["clock_suspect"] for s in sales if s["store"] == "store-001"} == flagged
        gauge = REGISTRY.get_sample_value("novapos_hub_store_event_delay_seconds",
                                          {"tenant": "demo", "store": "store-002"})
        assert gauge is not None and -35 <= gauge <= 0
        script = (await http.get(f"{hub.url}/static/console.js")).text  # the page shows both columns
        assert 'label: "Clock", value: s => skew(s.clock_skew_s)' in script and "check the till's clock" in script
        nursery.cancel_scope.cancel()

    EVENT_DELAY.clear()  # as in a freshly started hub process
    async with trio.open_nursery() as nursery:
        await nursery.start(run_hub, hub_config)
        restored = REGISTRY.get_sample_value("novapos_hub_store_event_delay_seconds",
                                             {"tenant": "demo", "store": "store-002"})
        assert restored == gauge
        nursery.cancel_scope.cancel()


async def _count(database_url: str, expected: int) -> bool:
    return (await query(database_url, "SELECT count(*) AS n FROM sales"))[0]["n"] == expected


async def test_a_store_clock_far_ahead_does_not_hold_the_top_of_recent_sales_or_last_sale(
        hub_config: HubConfig, nats_server: EmbeddedNats, database_url: str, http: httpx.AsyncClient) -> None:
    """Recent sales and a store's last sale follow the hub's receive time: a sale stamped 9999 sinks as newer
    sales arrive, and does not become the store's last sale for good."""
    far_ahead = dataclasses.replace(sale_event(seq=1), ts=253_402_300_799_000)   # 9999-12-31
    async with trio.open_nursery() as nursery:
        hub = await nursery.start(run_hub, hub_config)
        await publish(nats_server, [(SUBJECT, far_ahead.encode(), None)])
        await wait_until(lambda: _count(database_url, 1))
        later = dataclasses.replace(sale_event(seq=2), ts=int(time.time() * 1000))
        await publish(nats_server, [(SUBJECT, later.encode(), None)])
        await wait_until(lambda: _count(database_url, 2))
        await sign_in_admin(http, hub.url, database_url)
        sales = (await http.get(f"{hub.url}/api/sales")).json()
        [store] = (await http.get(f"{hub.url}/api/stores")).json()
        assert [sale["seq"] for sale in sales] == [2, 1]
        assert not store["last_sale"].startswith("9999"), store
        nursery.cancel_scope.cancel()
