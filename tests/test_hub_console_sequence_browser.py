"""The hub console page shows each store's sequence gaps and reused numbers (in its fleet section, to a signed-in
admin), in a real browser."""

from __future__ import annotations

import asyncio
import dataclasses
import time

import trio

from hub.app import run_hub
from novapos.config import HubConfig
from novapos.demo.embedded_nats import EmbeddedNats
from tests.catalog_support import add_tenancy
from tests.conftest import query, wait_until
from tests.events import SUBJECT, publish, sale_event
from tests.identity import add_user, grant
from tests.test_web_till_browser import headless_chromium  # noqa: F401  (skips this module without a browser)

from tests.console_page import Page  # isort: skip  (imports selenium: after the skip above)


def _sequence_table(url: str) -> list[list[str]]:
    with Page(url) as page:
        page.open("#fleet")
        page.sign_in("ada")
        for _ in range(100):
            rows = page.js(
                "return [...document.querySelectorAll('#sequence tr')].map(r => [...r.cells].map(c => c.textContent));")
            if len(rows) > 1 and rows[1][0] != "none":
                break
            time.sleep(0.1)  # the page loads its tables after it shows
        return list(rows)


async def test_the_console_page_lists_gaps_and_reused_numbers(
        hub_config: HubConfig, nats_server: EmbeddedNats, database_url: str) -> None:
    first = sale_event(seq=1)
    again = dataclasses.replace(sale_event(seq=1), ts=first.ts + 1)
    async with trio.open_nursery() as nursery:
        hub = await nursery.start(run_hub, hub_config)
        await trio.to_thread.run_sync(asyncio.run, add_tenancy(database_url))
        await add_user(database_url, "ada", grant("tenant_admin"))
        await publish(nats_server, [(SUBJECT, e.encode(), None) for e in (first, again, sale_event(seq=5))])
        await wait_until(lambda: _landed(database_url))
        rows = await trio.to_thread.run_sync(_sequence_table, hub.url + "/")
        assert rows[0] == ["Tenant", "Store", "Missing", "Gaps (newest first)", "Reused", "Reused numbers (event id)"]
        assert rows[1:] == [["demo", "store-001", "3", "2-4", "1", f"1 ({again.id})"]]
        nursery.cancel_scope.cancel()


async def _landed(database_url: str) -> bool:
    return (await query(database_url, "SELECT count(*) AS n FROM sales"))[0]["n"] == 3
