"""A regional admin in the hub console page (a real headless Chromium, hub, PostgreSQL, NATS and the demo
store's edge) sees their region's stores only, the demo store online with its devices and history; another
region's store typed into the URL shows the server's refusal, another tenant's is not found; what their
roles lack is not offered."""

from __future__ import annotations

import trio

from edge.app import run_edge
from hub.app import run_hub
from novapos.config import HubConfig, StoreConfig
from novapos.demo.embedded_nats import EmbeddedNats
from tests.conftest import query, wait_until
from tests.identity import add_user, grant
from tests.stock_world import build_world
from tests.test_web_till_browser import headless_chromium  # noqa: F401  (skips this module without a browser)

from tests.console_page import Page  # isort: skip  (imports selenium: after the skip above)


def _cells(rows: list[list[str]]) -> str:
    return " ".join(" ".join(row) for row in rows)


def _regional_session(url: str) -> dict[str, object]:
    with Page(url) as page:
        page.open()
        page.sign_in("nora")
        page.text_in("who", "Nora (nora) · demo · regional admin of region north")
        seen: dict[str, object] = {}
        seen["nav"] = page.js("return [...document.querySelectorAll('#nav a')].filter(a => !a.hidden)"
                              ".map(a => a.textContent)")
        page.go("#fleet")
        page.until(lambda b: "store-001" in _cells(page.rows("fleet")), "store-001 in the fleet")
        seen["fleet"] = page.rows("fleet")
        page.screenshot("08-regional-fleet")
        page.go("#fleet/store-001")
        page.until(lambda b: "receipt-printer" in _cells(page.rows("store-devices")), "the store's devices")
        seen["devices"] = page.rows("store-devices")
        seen["history"] = _cells(page.rows("store-history"))
        page.go("#catalog")
        seen["import offered"] = page.js("return !!document.getElementById('import-form')")
        for hash_ in ("#fleet/store-003", "#fleet/o-1"):
            page.go(hash_)
            page.until(lambda b: page.find("#problem").is_displayed(), f"the refusal at {hash_}")
            seen[hash_] = (page.js("return document.getElementById('view').dataset.refused"), page.find("#problem").text)
            if hash_ == "#fleet/store-003":
                page.screenshot("09-regional-refused")
        return seen


async def test_a_regional_admin_sees_only_their_region_and_is_refused_elsewhere(
        hub_config: HubConfig, store_config: StoreConfig, nats_server: EmbeddedNats) -> None:
    url = hub_config.database_url
    async with trio.open_nursery() as nursery:
        hub = await nursery.start(run_hub, hub_config)
        await build_world(url)
        await add_user(url, "nora", grant("regional_admin", "north"))
        await nursery.start(run_edge, store_config)  # the demo store, store-001 in region north

        async def reported() -> bool:
            return bool(await query(url, "SELECT 1 FROM fleet_status WHERE store = 'store-001' AND online"))
        await wait_until(reported, timeout=30)
        await query(url, "INSERT INTO fleet_status (tenant, store) VALUES ('demo', 'store-003'), ('other', 'o-1')"
                         " ON CONFLICT DO NOTHING")  # south's and the other tenant's are in the table, not the page
        seen = await trio.to_thread.run_sync(_regional_session, hub.url)
        nursery.cancel_scope.cancel()

    assert seen["nav"] == ["Fleet", "Catalog and prices", "Stock", "Orders", "Drawers and Z reports", "Dead letters",
                           "Users and roles", "Audit", "Payments", "Customers", "Loyalty", "Promotions", "Coupons",
                           "Gift cards"], seen
    fleet = {row[0]: row for row in seen["fleet"]}  # type: ignore[attr-defined]
    assert "store-001" in fleet and set(fleet) <= {"store-001", "store-002", "store-bare"}, seen  # not south's
    assert fleet["store-001"][3] == "online", seen
    assert any(row[0] == "receipt-printer" for row in seen["devices"]), seen  # type: ignore[attr-defined]
    assert "online" in str(seen["history"]), seen
    assert "o-1" not in str(seen["fleet"]), seen
    assert seen["import offered"] is False, seen
    refused, said = seen["#fleet/store-003"]  # type: ignore[misc]
    assert refused == "403" and said, seen
    assert seen["#fleet/o-1"][0] == "404", seen  # type: ignore[index]
