"""The audit section of the hub console page (a real headless Chromium, hub and PostgreSQL): the chain verifies
intact; then a superuser disables the append-only triggers and edits a row, and Verify in the page names it."""

from __future__ import annotations

import trio

from hub.app import run_hub
from novapos.config import HubConfig
from tests.conftest import query
from tests.identity import add_user, grant
from tests.stock_world import build_world
from tests.test_web_till_browser import headless_chromium  # noqa: F401  (skips this module without a browser)

from tests.console_page import Page  # isort: skip  (imports selenium: after the skip above)


def _verify(page: Page) -> str:
    page.js("document.getElementById('verify-result').textContent = ''")
    page.find("#verify").click()
    page.until(lambda b: page.find("#verify-result").text.startswith("The chain"), "the verification")
    return page.find("#verify-result").text


def _audit_session(url: str, tamper: trio.lowlevel.TrioToken, database_url: str) -> dict[str, object]:
    with Page(url) as page:
        page.open("#audit")
        page.sign_in("ada")
        page.until(lambda b: "login" in " ".join(" ".join(row) for row in page.rows("audit")), "the sign-in's record")
        seen: dict[str, object] = {"records": page.rows("audit")}
        page.fill({"f-action": "user.created"})
        page.find("#audit-search button").click()
        page.until(lambda b: all("user.created" in row for row in page.rows("audit")), "the filtered records")
        seen["filtered"] = page.rows("audit")
        seen["intact"] = _verify(page)
        trio.from_thread.run(_tamper, database_url, trio_token=tamper)
        seen["broken"] = _verify(page)
        seen["class"] = page.find("#verify-result").get_attribute("class")
        page.screenshot("10-audit-tampered-row-found")
        return seen


async def _tamper(database_url: str) -> None:
    for statement in ("ALTER TABLE audit_records DISABLE TRIGGER ALL",
                      "UPDATE audit_records SET actor = 'mallory' WHERE tenant = 'demo' AND seq = 2",
                      "ALTER TABLE audit_records ENABLE TRIGGER ALL"):
        await query(database_url, statement)


async def test_a_row_edited_by_a_superuser_is_found_by_verify_in_the_page(hub_config: HubConfig) -> None:
    url = hub_config.database_url
    async with trio.open_nursery() as nursery:
        hub = await nursery.start(run_hub, hub_config)
        await build_world(url)
        await add_user(url, "ada", grant("tenant_admin"))
        await add_user(url, "bob", grant("store_manager", "store-001"))
        seen = await trio.to_thread.run_sync(_audit_session, hub.url, trio.lowlevel.current_trio_token(), url)
        nursery.cancel_scope.cancel()

    assert [row[3] for row in seen["records"]][:1] == ["login"], seen  # type: ignore[index]
    assert [row[3] for row in seen["filtered"]] == ["user.created", "user.created"], seen  # type: ignore[index]
    assert str(seen["intact"]).startswith("The chain is intact: 3 records verified"), seen
    assert str(seen["broken"]).startswith("The chain is broken at record 2"), seen
    assert seen["class"] == "bad", seen
