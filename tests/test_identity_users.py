"""User management against a real hub, PostgreSQL and NATS: every role rule allowed and refused, other
tenants' and other regions' logins in URLs refused, weak PINs and short passwords refused changing nothing,
deactivation ending sessions, the lockout's refinements, keyset pages, and every change in the audit chain."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import trio

from hub.app import run_hub
from hub.identity import manage
from novapos import validators
from novapos.config import HubConfig
from tests.conftest import query
from tests.identity import PASSWORD, add_user, grant, signed_in
from tests.stock_world import build_world

NEW_PASSWORD = "a much longer secret"


async def _people(database_url: str) -> None:
    await build_world(database_url)
    await add_user(database_url, "ada", grant("tenant_admin"))
    await add_user(database_url, "nora", grant("regional_admin", "north"))
    await add_user(database_url, "sam", grant("regional_admin", "south"))
    await add_user(database_url, "mia", grant("store_manager", "store-001"))
    await add_user(database_url, "sue", grant("supervisor", "store-001"))
    await add_user(database_url, "carl", grant("cashier", "store-001"), pin="4711")
    await add_user(database_url, "dora", grant("cashier", "store-003"), pin="4711")
    await add_user(database_url, "ola", grant("tenant_admin"), tenant="other")


def _logins(page: dict[str, Any]) -> list[str]:
    assert "items" in page, page
    return [item["login"] for item in page["items"]]


async def test_who_sees_whom_and_keyset_pages(hub_config: HubConfig) -> None:
    async with trio.open_nursery() as nursery:
        hub = await nursery.start(run_hub, hub_config)
        await _people(hub_config.database_url)
        async with signed_in(hub.url, "ada") as ada, signed_in(hub.url, "nora") as nora, \
                signed_in(hub.url, "mia") as mia:
            assert _logins((await ada.get("/api/users")).json()) == ["ada", "carl", "dora", "mia", "nora", "sam", "sue"]
            assert _logins((await nora.get("/api/users")).json()) == ["carl", "mia", "nora", "sue"]
            assert _logins((await mia.get("/api/users")).json()) == ["carl", "mia", "sue"]
            first = (await ada.get("/api/users", params={"limit": 4})).json()
            assert _logins(first) == ["ada", "carl", "dora", "mia"] and first["next"] == "mia"
            rest = (await ada.get("/api/users", params={"limit": 4, "after": first["next"]})).json()
            assert _logins(rest) == ["nora", "sam", "sue"] and rest["next"] is None
            assert (await ada.get("/api/users", params={"tenant": "other"})).status_code == 404
            async with signed_in(hub.url, "sue") as sue:  # a supervisor sells and sees the store, not its people
                assert (await sue.get("/api/users")).status_code == 403
                assert (await sue.get("/api/users/carl")).status_code == 403
            assert _logins((await ada.get("/api/users", params={"q": "Do"})).json()) == ["dora"]
            assert _logins((await ada.get("/api/users", params={"q": "%"})).json()) == []
            assert _logins((await nora.get("/api/users", params={"store": "store-001"})).json()) == ["carl", "mia", "sue"]
            assert (await nora.get("/api/users", params={"store": "store-003"})).status_code == 403
            assert (await nora.get("/api/users", params={"store": "o-1"})).status_code == 404
            assert (await ada.get("/api/users", params={"limit": "0"})).status_code == 422
            assert (await ada.get("/api/users", params={"limit": "x"})).status_code == 400
            # logins in URLs: another tenant's is not found, another region's refused
            assert (await ada.get("/api/users/ola")).status_code == 404
            assert (await nora.get("/api/users/ola")).status_code == 404
            refused = await nora.get("/api/users/dora")
            assert refused.status_code == 403 and "nora" in refused.json()["error"]
            assert (await nora.get("/api/users/carl")).json()["roles"] == [
                {"role": "cashier", "region": None, "store": "store-001"}]
            assert (await mia.get("/api/users/nora")).status_code == 403
        async with httpx.AsyncClient(base_url=hub.url) as anonymous:
            assert (await anonymous.get("/api/users")).status_code == 401
            assert (await anonymous.post("/api/users/carl/changes", json={"active": False})).status_code == 401
        nursery.cancel_scope.cancel()


async def test_every_role_rule_allowed_and_refused(hub_config: HubConfig) -> None:
    url = hub_config.database_url
    async with trio.open_nursery() as nursery:
        hub = await nursery.start(run_hub, hub_config)
        await _people(url)
        async with signed_in(hub.url, "ada") as ada, signed_in(hub.url, "nora") as nora, \
                signed_in(hub.url, "mia") as mia:
            before = await query(url, "SELECT count(*) AS n FROM audit_records")

            async def refused(client: httpx.AsyncClient, path: str, body: dict[str, Any], status: int = 403) -> None:
                answer = await client.post(path, json=body)
                assert answer.status_code == status, (path, body, answer.text)
                assert answer.json()["error"]

            new = {"login": "zed", "name": "Zed", "roles": [{"role": "cashier", "store": "store-001"}]}
            # a regional admin grants store roles at their region's stores only
            await refused(nora, "/api/users", {**new, "roles": [{"role": "cashier", "store": "store-003"}]})
            await refused(nora, "/api/users", {**new, "roles": [{"role": "regional_admin", "region": "north"}]})
            await refused(nora, "/api/users", {**new, "roles": [{"role": "tenant_admin"}]})
            await refused(nora, "/api/users", {**new, "roles": [{"role": "cashier", "store": "o-1"}]}, 404)
            await refused(mia, "/api/users", new)  # a store manager views users, does not manage them
            await refused(nora, "/api/users", {**new, "pin": "1234"}, 422)
            await refused(nora, "/api/users", {**new, "pin": "0000"}, 422)
            await refused(nora, "/api/users", {**new, "pin": "12a4"}, 422)
            await refused(nora, "/api/users", {**new, "password": "too short"}, 422)
            await refused(nora, "/api/users", {**new, "login": "ADA"}, 409)
            await refused(nora, "/api/users", {**new, "roles": [{"role": "cashier", "region": "north"}]}, 422)
            assert (await query(url, "SELECT count(*) AS n FROM audit_records")) == before  # nothing changed
            made = await nora.post("/api/users", json={**new, "pin": "8152", "password": NEW_PASSWORD})
            assert made.status_code == 201 and made.json()["till"] and made.json()["console"]

            # a regional admin changes only users all of whose roles lie at their region's stores
            await refused(nora, "/api/users/dora/changes", {"active": False})
            await refused(nora, "/api/users/sam/changes", {"name": "Sam"})
            await refused(nora, "/api/users/ada/changes", {"active": False})
            await refused(nora, "/api/users/ola/changes", {"active": False}, 404)
            await refused(nora, "/api/users/zed/roles", {"role": "cashier", "store": "store-003"})
            assert (await nora.post("/api/users/zed/roles", json={"role": "supervisor", "store": "store-002"})
                    ).status_code == 200
            await refused(nora, "/api/users/zed/roles", {"role": "supervisor", "store": "store-002"}, 409)
            # once zed also works in the south, nora may no longer change zed; ada may
            assert (await ada.post("/api/users/zed/roles", json={"role": "cashier", "store": "store-003"})
                    ).status_code == 200
            await refused(nora, "/api/users/zed/changes", {"name": "Zed Z"})
            await refused(nora, "/api/users/zed/roles/revoke", {"role": "cashier", "store": "store-001"})
            listed = (await nora.get("/api/users/zed")).json()
            assert listed["roles_elsewhere"] == 1 and len(listed["roles"]) == 2
            assert (await ada.post("/api/users/zed/roles/revoke", json={"role": "cashier", "store": "store-003"})
                    ).status_code == 200
            await refused(ada, "/api/users/zed/roles/revoke", {"role": "cashier", "store": "store-003"}, 404)
            changed = await nora.post("/api/users/zed/changes", json={"name": "Zed Z", "pin": "8153"})
            assert changed.status_code == 200 and changed.json()["name"] == "Zed Z"
            # a store manager changes nobody else; anyone changes their own name and password
            await refused(mia, "/api/users/carl/changes", {"active": False})
            assert (await mia.post("/api/users/mia/changes", json={"name": "Mia M"})).status_code == 200
            # nobody deactivates themselves or drops their own last admin role
            await refused(ada, "/api/users/ada/changes", {"active": False})
            await refused(ada, "/api/users/ada/roles/revoke", {"role": "tenant_admin"})
            await refused(nora, "/api/users/nora/roles/revoke", {"role": "regional_admin", "region": "north"})
            # hostile bodies change nothing
            await refused(ada, "/api/users/carl/changes", {}, 422)
            await refused(ada, "/api/users/carl/changes", {"admin": True}, 422)
            await refused(ada, "/api/users/carl/changes", {"active": "no"}, 422)
            await refused(ada, "/api/users/carl/roles", {"role": "owner"}, 422)
            await refused(ada, "/api/users/carl/roles", {"role": "cashier", "store": "store-001", "x": 1}, 422)
            await refused(ada, "/api/users/no%00body/changes", {"name": "x"}, 422)
            forged = await ada.post("/api/users/carl/changes", json={"active": False}, headers={"x-csrf-token": "x"})
            assert forged.status_code == 403 and "CSRF" in forged.json()["error"]
            # the same grant and the same new login at once: one lands, the others are told so, none fails
            statuses: list[int] = []

            async def send(path: str, body: dict[str, Any]) -> None:
                statuses.append((await ada.post(path, json=body)).status_code)
            async with trio.open_nursery() as racing:
                for _ in range(4):
                    racing.start_soon(send, "/api/users/carl/roles", {"role": "supervisor", "store": "store-002"})
                    racing.start_soon(send, "/api/users", {"login": "twin", "name": "Twin",
                                                           "roles": [{"role": "cashier", "store": "store-002"}]})
            assert sorted(statuses) == [200, 201, *[409] * 6], statuses
        nursery.cancel_scope.cancel()
    audited = [(r["actor"], r["action"], r["target"]) for r in await query(
        url, "SELECT actor, action, target FROM audit_records WHERE tenant = 'demo' AND action NOT LIKE 'log%'"
             " AND actor <> 'test' ORDER BY seq")]
    audited[-2:] = sorted(audited[-2:])  # the race's two winners, in either order
    assert audited == [("nora", "user.created", "zed"), ("nora", "role.granted", "zed"), ("ada", "role.granted", "zed"),
                       ("ada", "role.revoked", "zed"), ("nora", "user.changed", "zed"), ("nora", "user.pin_set", "zed"),
                       ("mia", "user.changed", "mia"), ("ada", "role.granted", "carl"), ("ada", "user.created", "twin")]


async def test_deactivation_ends_sessions_and_refused_sign_ins_do_not_lock(hub_config: HubConfig) -> None:
    url = hub_config.database_url
    async with trio.open_nursery() as nursery:
        hub = await nursery.start(run_hub, hub_config)
        await _people(url)
        async with signed_in(hub.url, "ada") as ada, signed_in(hub.url, "mia") as mia:
            assert (await ada.post("/api/users/mia/changes", json={"active": False})).status_code == 200
            assert (await mia.get("/api/session")).status_code == 401
            async with httpx.AsyncClient(base_url=hub.url) as guesser:
                for _ in range(6):  # a right password for a deactivated user: refused, audited, never a lockout
                    answer = await guesser.post("/api/login", json={"login": "mia", "password": PASSWORD})
                    assert answer.status_code == 403
                assert (await guesser.post("/api/login", json={"login": "carl", "password": PASSWORD})
                        ).status_code == 403
            assert (await ada.post("/api/users/mia/changes", json={"active": True})).status_code == 200
            async with signed_in(hub.url, "mia") as again:
                assert (await again.get("/api/session")).status_code == 200
            async with httpx.AsyncClient(base_url=hub.url) as guesser:
                for n in range(5):
                    await guesser.post("/api/login", json={"login": "nora", "password": f"guess {n}"})
            assert (await ada.get("/api/users/nora")).json()["locked"]
            assert (await ada.post("/api/users/nora/changes", json={"unlock": True})).status_code == 200
            async with signed_in(hub.url, "nora") as nora:
                set_own = await nora.post("/api/users/nora/changes", json={"password": NEW_PASSWORD})
                assert set_own.status_code == 200
                assert (await nora.get("/api/session")).status_code == 200  # their own session stays
            async with signed_in(hub.url, "nora", NEW_PASSWORD) as nora:
                assert (await nora.get("/api/session")).status_code == 200
        nursery.cancel_scope.cancel()
    rows = await query(url, "SELECT action, details->>'why' AS why FROM audit_records WHERE target = 'mia'"
                            " OR (actor = 'mia' AND action = 'login.failed') ORDER BY seq")
    assert [r["action"] for r in rows] == ["user.created", "user.deactivated", *["login.failed"] * 6, "user.reactivated"]
    assert {r["why"] for r in rows if r["action"] == "login.failed"} == {"deactivated"}
    assert [r["action"] for r in await query(url, "SELECT action FROM audit_records WHERE target = 'nora'"
                                                  " ORDER BY seq")] == ["user.created", "login.locked", "user.unlocked", "user.password_set"]


def test_pins_and_passwords_a_thief_tries_first_are_refused() -> None:
    for weak in ("0000", "1111111", "1234", "12345678", "9876", "3210", "7890", "8901", "123", "123456789", "12 34",
                 "١٢٣٤", 1234, None):  # repeats, runs (wrapping too), lengths, not ASCII digits, not text
        with pytest.raises(validators.Invalid):
            manage.pin("pin", weak)
    for fine in ("2580", "4711", "8152", "13572468", "1212"):
        assert manage.pin("pin", fine) == fine
    for weak_password in ("short", "nine char", " " * 12, "a\x00bcdefghijk", 12345678901):
        with pytest.raises(validators.Invalid):
            manage.password("password", weak_password)
    assert manage.password("password", "  ten chars ") == "  ten chars "
