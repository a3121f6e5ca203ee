"""A dead letter in the hub console page (a real headless Chromium, hub, PostgreSQL and NATS): listed with the
reason the hub refused it; once the cause is fixed, Re-drive lands the sale once and the letter stays, marked."""

from __future__ import annotations

import asyncio

import trio

from hub.app import run_hub
from novapos.config import HubConfig
from novapos.demo.embedded_nats import EmbeddedNats
from tests.catalog_support import add_tenancy
from tests.conftest import query
from tests.identity import add_user, grant
from tests.test_hub_dead_letters import _refused_by_a_rule_then_fixed
from tests.test_web_till_browser import headless_chromium  # noqa: F401  (skips this module without a browser)

from tests.console_page import Page  # isort: skip  (imports selenium: after the skip above)


def _redrive(url: str, letter: int) -> dict[str, object]:
    with Page(url) as page:
        page.open("#dead-letters")
        page.sign_in("ada")
        page.until(lambda b: any(row[0] == str(letter) for row in page.rows("dead-letters")), "the dead letter")
        before = page.rows("dead-letters")
        page.find(f"button[data-redrive='{letter}']").click()
        page.text_in("status", f"Dead letter {letter} re-driven: applied")
        page.screenshot("13-dead-letter-redriven")
        return {"before": before, "after": page.rows("dead-letters"),
                "buttons": page.js("return document.querySelectorAll('button[data-redrive]').length")}


async def test_a_dead_letter_is_shown_with_its_reason_and_redriven_from_the_page(
        hub_config: HubConfig, nats_server: EmbeddedNats) -> None:
    url = hub_config.database_url
    async with trio.open_nursery() as nursery:
        hub = await nursery.start(run_hub, hub_config)
        await trio.to_thread.run_sync(asyncio.run, add_tenancy(url))
        await add_user(url, "ada", grant("tenant_admin"))
        letter, sale = await _refused_by_a_rule_then_fixed(hub.url, nats_server, url)
        seen = await trio.to_thread.run_sync(_redrive, hub.url, letter)
        nursery.cancel_scope.cancel()

    [row] = seen["before"]  # type: ignore[misc]
    assert "at_most_50" in row[3] and row[4] == "no", seen
    [row] = seen["after"]  # type: ignore[misc]
    assert row[4].endswith(": applied") and seen["buttons"] == 0, seen
    assert [r["event_id"] for r in await query(url, "SELECT event_id FROM sales")] == [sale]
