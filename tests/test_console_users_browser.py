"""Users, roles and store assignments in the hub console page (a real headless Chromium, hub and PostgreSQL):
a regional admin makes a cashier with a till PIN at one of their stores, gives her a supervisor's role at
another, is refused a store of another region with the hub's sentence, revokes and deactivates."""

from __future__ import annotations

import trio

from hub.app import run_hub
from novapos.config import HubConfig
from tests.conftest import query
from tests.identity import add_user, grant
from tests.stock_world import build_world
from tests.test_web_till_browser import headless_chromium  # noqa: F401  (skips this module without a browser)

from tests.console_page import Page  # isort: skip  (imports selenium: after the skip above)


def _manage(url: str) -> dict[str, object]:
    seen: dict[str, object] = {}
    with Page(url) as page:
        page.open("#users")
        page.sign_in("nora")
        page.fill({"f-new-login": "mia", "f-new-name": "Mia Cashier", "f-new-pin": "4711", "f-new-role": "cashier",
                   "f-new-where": "store-001"})
        page.find("#new-user button").click()
        page.until(lambda b: b.execute_script("return location.hash") == "#users/mia", "mia's page")
        page.until(lambda b: "cashier" in " ".join(" ".join(r) for r in page.rows("user-roles")), "mia's role")
        page.fill({"f-grant-role": "supervisor", "f-grant-where": "store-002"})
        page.find("#grant-form button").click()
        page.text_in("status", "granted supervisor at store-002")
        page.fill({"f-grant-role": "cashier", "f-grant-where": "store-003"})
        page.find("#grant-form button").click()
        page.until(lambda b: page.find("#problem").is_displayed(), "the refusal of store-003")
        seen["refused"] = page.find("#problem").text
        seen["roles"] = page.rows("user-roles")
        page.screenshot("11-user-roles")
        page.find("#user-roles tbody tr:nth-child(2) button").click()  # revoke the second (supervisor) role
        page.text_in("status", "revoked supervisor at store-002")
        page.fill({"f-edit-active": "false"})
        page.find("#user-form button").click()
        page.text_in("status", "saved")
        page.go("#users")
        page.until(lambda b: any(r[0] == "mia" for r in page.rows("users")), "mia in the list")
        seen["listed"] = next(r for r in page.rows("users") if r[0] == "mia")
    return seen


async def test_a_regional_admin_manages_a_cashier_within_their_region_in_the_page(hub_config: HubConfig) -> None:
    url = hub_config.database_url
    async with trio.open_nursery() as nursery:
        hub = await nursery.start(run_hub, hub_config)
        await build_world(url)
        await add_user(url, "nora", grant("regional_admin", "north"))
        seen = await trio.to_thread.run_sync(_manage, hub.url)
        nursery.cancel_scope.cancel()

    assert "store-003" in str(seen["refused"]) and "nora" in str(seen["refused"]), seen
    assert [(r[0], r[2]) for r in seen["roles"]] == [("cashier", "store-001"), ("supervisor", "store-002")], seen  # type: ignore[attr-defined]
    listed = seen["listed"]
    assert listed[2] == "deactivated" and "till" in listed[4] and "supervisor" not in listed[5], seen  # type: ignore[index]
    rows = await query(url, "SELECT u.active, r.role, r.store FROM users u JOIN user_roles r ON r.user_id = u.id"
                            " WHERE u.login = 'mia'")
    assert [(row["active"], row["role"], row["store"]) for row in rows] == [(False, "cashier", "store-001")]
    actions = [row["action"] for row in await query(url, "SELECT action FROM audit_records WHERE actor = 'nora'"
                                                         " ORDER BY seq")]
    assert actions == ["login", "user.created", "role.granted", "role.revoked", "user.deactivated"], actions
