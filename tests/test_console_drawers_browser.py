"""Drawer sessions and Z reports in the hub console page (a real headless Chromium, hub, PostgreSQL and NATS): a
regional admin sees their region's sessions per store and day, a Z report with its tenders as money and its late
sale; another region's session typed into the URL shows the hub's refusal."""

from __future__ import annotations

import time
from typing import Any

import trio

from hub.app import run_hub
from novapos.config import HubConfig
from novapos.demo.embedded_nats import EmbeddedNats
from novapos.wire.envelope import Envelope
from novapos.wire.ids import uuid7
from novapos.wire.subjects import event_subject
from tests import drawer_events
from tests.conftest import query, wait_until
from tests.events import publish, sale_event
from tests.identity import add_user, grant
from tests.stock_world import build_world
from tests.test_web_till_browser import headless_chromium  # noqa: F401  (skips this module without a browser)

from tests.console_page import Page  # isort: skip  (imports selenium: after the skip above)


def _event(event_type: str, store: str, seq: int, body: dict[str, Any]) -> Envelope:
    return Envelope(id=uuid7(), type=event_type, v=1, tenant="demo", store=store, seq=seq,
                    ts=int(time.time() * 1000), body=body)


def _drawers(url: str, north: str, south: str) -> dict[str, Any]:
    with Page(url) as page:
        page.open("#drawers")
        page.sign_in("nora")
        page.until(lambda b: "store-001" in str(page.rows("drawer-sessions")), "store-001's session")
        seen: dict[str, Any] = {"list": page.rows("drawer-sessions")}
        page.screenshot("30-drawer-sessions")
        page.go(f"#drawers/{north}")
        page.until(lambda b: "Z report #1" in page.find("#view").text, "the Z report")
        seen["z"] = page.find("#view").text
        page.screenshot("31-z-report")
        page.go(f"#drawers/{south}")
        page.until(lambda b: page.find("#problem").is_displayed(), "the refusal of south's session")
        seen["south"] = (page.js("return document.getElementById('view').dataset.refused"), page.find("#problem").text)
        return seen


async def test_a_regional_admin_sees_their_regions_drawer_sessions(hub_config: HubConfig,
                                                                   nats_server: EmbeddedNats) -> None:
    url = hub_config.database_url
    north, south = str(uuid7()), str(uuid7())
    late = sale_event(seq=3)
    late = Envelope(**{**late.__dict__, "body": {**late.body, "drawer_session": north}})
    events = [_event("drawer.opened", "store-001", 1, drawer_events.opened(north)),
              _event("drawer.closed", "store-001", 2, drawer_events.closed(north)), late,
              _event("drawer.opened", "store-003", 1, drawer_events.opened(south))]
    async with trio.open_nursery() as nursery:
        hub = await nursery.start(run_hub, hub_config)
        await build_world(url)
        await add_user(url, "nora", grant("regional_admin", "north"))
        for event in events:  # one by one: the late sale is met after the Z report's transaction
            await publish(nats_server, [(event_subject("demo", event.store, event.type), event.encode(), None)])
            await wait_until(lambda e=event: query(url, "SELECT 1 FROM inbox WHERE event_id = $1", e.id))
        seen = await trio.to_thread.run_sync(_drawers, hub.url, north, south)
        nursery.cancel_scope.cancel()

    listed = " ".join(" ".join(row) for row in seen["list"])
    assert "store-003" not in listed and "#1" in listed and "1 after the Z" in listed, seen
    z = seen["z"]
    assert "190.00 EUR" in z and "card visa" in z and "40.00 EUR" in z and "-0.50 EUR" in z, z
    assert "manager" in z and str(late.id) in z, z
    refused, said = seen["south"]
    assert refused == "403" and "nora" in said, seen
