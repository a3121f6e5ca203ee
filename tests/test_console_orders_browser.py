"""Orders in the hub console page (a real headless Chromium, hub, PostgreSQL and NATS): a regional admin sees
their region's orders and takings only, an order's lines and tenders as money; another region's order typed
into the URL shows the hub's refusal."""

from __future__ import annotations

import trio

from hub.app import run_hub
from novapos.config import HubConfig
from novapos.demo.embedded_nats import EmbeddedNats
from novapos.wire.subjects import event_subject
from tests.conftest import query, wait_until
from tests.events import publish
from tests.identity import add_user, grant
from tests.stock_world import build_world, sale
from tests.test_web_till_browser import headless_chromium  # noqa: F401  (skips this module without a browser)

from tests.console_page import Page  # isort: skip  (imports selenium: after the skip above)


def _cells(rows: list[list[str]]) -> str:
    return " ".join(" ".join(row) for row in rows)


def _orders(url: str, north_order: str, south_order: str) -> dict[str, object]:
    with Page(url) as page:
        page.open("#orders")
        page.sign_in("nora")
        page.until(lambda b: "store-001" in _cells(page.rows("orders")), "store-001's order")
        seen: dict[str, object] = {"orders": _cells(page.rows("orders"))}
        page.until(lambda b: "store-001" in _cells(page.rows("takings")), "north's takings")
        seen["takings"] = page.rows("takings")
        page.go(f"#orders/{north_order}")
        seen["order"] = page.find("#view").text
        page.screenshot("12-regional-order")
        page.go(f"#orders/{south_order}")
        page.until(lambda b: page.find("#problem").is_displayed(), "the refusal of south's order")
        seen["south"] = (page.js("return document.getElementById('view').dataset.refused"), page.find("#problem").text)
        return seen


async def test_a_regional_admin_sees_their_regions_orders_only(hub_config: HubConfig, nats_server: EmbeddedNats) -> None:
    url = hub_config.database_url
    north, south = sale([("COF-250", 1)], store="store-001"), sale([("COF-250", 2)], store="store-003")
    async with trio.open_nursery() as nursery:
        hub = await nursery.start(run_hub, hub_config)
        await build_world(url)
        await add_user(url, "nora", grant("regional_admin", "north"))
        await publish(nats_server, [(event_subject("demo", e.store, e.type), e.encode(), None) for e in (north, south)])

        async def landed() -> bool:
            return (await query(url, "SELECT count(*) AS n FROM sales"))[0]["n"] == 2
        await wait_until(landed)
        seen = await trio.to_thread.run_sync(_orders, hub.url, str(north.id), str(south.id))
        nursery.cancel_scope.cancel()

    assert "store-003" not in str(seen["orders"]), seen
    assert [row[:3] for row in seen["takings"]] == [["store-001", "1", "4.99 EUR"]], seen  # type: ignore[attr-defined]
    order = str(seen["order"])
    assert "Lines" in order and "COF-250" in order and "4.99 EUR" in order, order
    assert "Tenders" in order and "cash" in order, order
    refused, said = seen["south"]  # type: ignore[misc]
    assert refused == "403" and "nora" in said, seen
