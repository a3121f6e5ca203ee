"""PIN login at the till against a real edge (real SQLite, NATS, HTTP): wrong PINs, lockout (surviving a restart),
the offline window, roles and overrides, one till's cookie at another, the lock screen, logout keeping the cart,
a deactivated user, and every /api/ route refusing a request without the login's cookie."""

from __future__ import annotations

import dataclasses
import re
import signal
import sqlite3
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from actors.staff.cache import StaffCache, staff_path
from actors.staff.logins import LoginActor
from edge.api import build_api
from edge.api.auth import LoginDoor, authorized, signed_in
from edge.api.login import login_routes
from edge.app import RunningEdge
from edge.events import EventHub
from hub.app import run_hub
from mocks.network_printer import MockNetworkPrinter
from novapos.adapters.http import json_body, route, serve, with_api_errors
from novapos.config import ConfigError, HubConfig, StoreConfig, load_store
from novapos.config.login import LoginSettings
from novapos.demo.embedded_nats import EmbeddedNats
from novapos.roles import Permission
from tests.conftest import CONFIGS, query, wait_until
from tests.edges import printer_rule, running_edge, start_edge, store_box, waiting_events
from tests.pos import COFFEE, MANAGER_OVERRIDE, MILK, SEED_VERSION, log_in, log_in_at, seed_staff, staff_list

ALICE = {"login": "alice", "pin": "1111"}
NOT_LOGGED_IN = "log in with your PIN at this till"


def audited(config: StoreConfig, action: str) -> list[dict[str, Any]]:
    """The audit records of `action` waiting in the store's outbox (committed, not yet sent)."""
    return [event.body for event in waiting_events(config.state_dir)
            if event.type == "audit.recorded" and event.body["action"] == action]


async def test_a_wrong_pin_is_refused_five_lock_the_user_out_across_a_restart_until_the_lockout_ends(
        store_config: StoreConfig, http: httpx.AsyncClient) -> None:
    config = dataclasses.replace(store_config, login=LoginSettings(lockout_after=5, lockout_s=4))
    async with running_edge(config) as edge:
        till = f"{edge.url}/api/tills/till-1"
        before = await edge.tree.ask("till.till-1", "state")
        for attempt in range(4):
            wrong = await http.post(f"{till}/login", json={"login": "alice", "pin": f"99{attempt}"})
            assert wrong.status_code == 401 and wrong.json()["error"] == "The login or PIN is wrong: try again"
            assert "set-cookie" not in wrong.headers
        assert await edge.tree.ask("till.till-1", "state") == before  # nothing changed
        assert audited(config, "till.login_locked") == []
        fifth = await http.post(f"{till}/login", json={"login": "alice", "pin": "0000"})
        assert fifth.status_code == 423 and "too many wrong PINs" in fifth.json()["error"]
        assert "until" in fifth.json()["error"] and "a store manager can help" in fifth.json()["error"]
        locked_at = time.time()
        right = await http.post(f"{till}/login", json=ALICE)  # the right PIN does not get past a lockout
        assert right.status_code == 423
        [record] = audited(config, "till.login_locked")
        assert (record["actor"], record["till"], record["details"]["failures"]) == ("alice", "till-1", 5)
        bob = await log_in_at(http, till, "bob")  # only alice is locked out
        assert bob["session"]["cashier"] == "bob"
    async with running_edge(config) as edge:  # a restart does not reset the lockout
        till = f"{edge.url}/api/tills/till-1"
        assert (await http.post(f"{till}/login", json=ALICE)).status_code == 423
        await trio.sleep(max(0.0, locked_at + 4.2 - time.time()))
        back = await http.post(f"{till}/login", json=ALICE)
        assert back.status_code == 200 and back.json()["session"]["cashier"] == "alice"
        wrong = await http.post(f"{till}/login", json={"login": "alice", "pin": "0000"})
        assert wrong.status_code == 401  # the count started afresh: one wrong PIN is not a lockout


async def test_an_unknown_login_is_refused_like_a_wrong_pin_and_locks_out_alike(
        store_config: StoreConfig, http: httpx.AsyncClient) -> None:
    async with running_edge(store_config) as edge:
        till = f"{edge.url}/api/tills/till-1"
        took = {}
        for login in ("alice", "nobody"):
            started = time.perf_counter()
            answer = await http.post(f"{till}/login", json={"login": login, "pin": "4444"})
            took[login] = time.perf_counter() - started
            assert answer.status_code == 401 and answer.json()["error"] == "The login or PIN is wrong: try again"
        assert took["nobody"] > 0.03 and took["alice"] > 0.03  # a scrypt check ran for both: no shortcut for strangers
        for _ in range(4):
            await http.post(f"{till}/login", json={"login": "nobody", "pin": "4444"})
        assert (await http.post(f"{till}/login", json={"login": "nobody", "pin": "4444"})).status_code == 423
        assert audited(store_config, "till.login_locked") == []  # nobody to audit: only a log line


async def test_an_offline_login_is_audited_and_past_the_grace_window_logins_are_refused(
        store_config: StoreConfig, http: httpx.AsyncClient) -> None:
    config = dataclasses.replace(store_config, login=LoginSettings(offline_after_s=1, offline_grace_s=3))
    async with running_edge(config) as edge:  # no hub answers: the list's last confirmation is the seed's
        till = f"{edge.url}/api/tills/till-1"
        await trio.sleep(1.2)
        state = await log_in_at(http, till, "alice")
        assert state["session"]["offline"] is True
        whoami = (await http.get(f"{till}/whoami")).json()
        assert whoami["offline"] is True and whoami["login"] == "alice" and whoami["roles"] == ["cashier"]
        assert (await http.get(f"{edge.url}/healthz")).json()["logins_offline"] is True
        [record] = audited(config, "till.offline_login")
        assert (record["actor"], record["till"], record["target"]) == ("alice", "till-1", state["session"]["id"])
        await trio.sleep(2.0)
        refused = await http.post(f"{till}/login", json={"login": "bob", "pin": "2222"})
        assert refused.status_code == 403
        assert "this till has not reached the hub for" in refused.json()["error"]
        assert "logins need the hub again" in refused.json()["error"]
        assert (await http.get(f"{till}/whoami")).json()["login"] == "alice"  # who is logged in stays
        assert len(audited(config, "till.offline_login")) == 1


def probe_app(edge: RunningEdge, config: StoreConfig) -> Starlette:
    """The login routes and two probes behind the real door, on the running edge's actors: what a till route
    written by another part of the till sees of `signed_in` and `authorized`."""
    async def discount(request: Request) -> Response:
        user = await signed_in(request, edge.tree, Permission.DISCOUNT)
        return JSONResponse({"user": user.login})

    async def override(request: Request) -> Response:
        user, approver = await authorized(request, edge.tree, await json_body(request), Permission.OVERRIDE)
        return JSONResponse({"user": user.login, "approver": approver})

    return with_api_errors(Starlette(routes=[
        *login_routes(edge.tree, config.tills), route("/api/tills/{till}/discount", GET=discount),
        route("/api/tills/{till}/override", POST=override)],
        middleware=[Middleware(LoginDoor, tree=edge.tree, tills=config.tills)]))


async def test_a_role_that_may_not_is_refused_naming_who_may_and_a_managers_pin_approves_once(
        store_config: StoreConfig) -> None:
    async with running_edge(store_config) as edge, trio.open_nursery() as nursery:
        urls = await nursery.start(serve, probe_app(edge, store_config), "127.0.0.1", 0)
        async with httpx.AsyncClient(base_url=urls[0], timeout=10) as till:
            await log_in(till, "", "till-1", "alice")
            refused = await till.get("/api/tills/till-1/discount")
            assert refused.status_code == 403
            assert refused.json()["error"] == ("a discount needs a store manager or supervisor (roles: store_manager, "
                                               "supervisor; yours: cashier): ask one to approve with their PIN")
            assert (await till.post("/api/tills/till-1/override", json={})).status_code == 403
            approved = await till.post("/api/tills/till-1/override", json={"override": MANAGER_OVERRIDE})
            assert approved.status_code == 200 and approved.json() == {"user": "alice", "approver": "manager"}
            by_a_cashier = await till.post("/api/tills/till-1/override", json={"override": {"login": "bob",
                                                                                             "pin": "2222"}})
            assert by_a_cashier.status_code == 403 and "Bob Baker may not approve this" in by_a_cashier.json()["error"]
            for _ in range(4):  # a wrong PIN counts toward the approver's lockout, not the cashier's
                wrong = await till.post("/api/tills/till-1/override", json={"override": {"login": "manager",
                                                                                         "pin": "0000"}})
                assert wrong.status_code == 401 and wrong.json()["error"].startswith("The approver's login or PIN")
            fifth = await till.post("/api/tills/till-1/override", json={"override": {"login": "manager", "pin": "0"}})
            assert fifth.status_code == 423
            assert (await till.post("/api/tills/till-1/override", json={"override": MANAGER_OVERRIDE})).status_code == 423
            assert (await till.get("/api/tills/till-1/whoami")).json()["login"] == "alice"  # she is still in
            bad = await till.post("/api/tills/till-1/override", json={"override": {"login": "sam", "pin": "33x"}})
            assert bad.status_code == 422 and "digits only" in bad.json()["error"]
            await log_in(till, "", "till-1", "sam")
            assert (await till.get("/api/tills/till-1/discount")).json() == {"user": "sam"}
            assert (await till.post("/api/tills/till-1/override", json={})).json() == {"user": "sam", "approver": None}
        nursery.cancel_scope.cancel()
    [locked] = audited(store_config, "till.login_locked")
    assert locked["actor"] == "manager"


async def test_a_tills_cookie_is_refused_at_another_till_and_every_api_route_needs_one(
        store_config: StoreConfig, http: httpx.AsyncClient) -> None:
    async with running_edge(store_config) as edge:
        await log_in(http, edge.url, "till-1", "alice")
        token = http.cookies["novapos_till_till-1"]
        async with httpx.AsyncClient(timeout=10, cookies={"novapos_till_till-2": token}) as thief:
            stolen = await thief.get(f"{edge.url}/api/tills/till-2")
            assert stolen.status_code == 401 and NOT_LOGGED_IN in stolen.json()["error"]
        app = build_api(store_config, edge.tree, EventHub())
        public = {"/api/store", "/api/tills/{till}/login"}
        checked = []
        async with httpx.AsyncClient(timeout=10) as stranger:
            for api in app.routes:
                path = getattr(api, "path", "")
                if not path.startswith("/api/") or path in public:
                    continue
                url = edge.url + re.sub(r"{till}", "till-1", re.sub(r"{(?!till})\w+}", "x", path))
                for method in sorted(set(getattr(api, "methods", ())) - {"HEAD", "OPTIONS"}):
                    answer = await stranger.request(method, url, json={} if method != "GET" else None)
                    assert answer.status_code == 401, (method, path, answer.text)
                    assert NOT_LOGGED_IN in answer.json()["error"]
                    checked.append((method, path))
            assert (await stranger.get(f"{edge.url}/api/store")).status_code == 200
        assert {("GET", "/api/events"), ("GET", "/api/tills/{till}"), ("POST", "/api/tills/{till}/lines"),
                ("POST", "/api/tills/{till}/logout")} <= set(checked)
        assert (await http.get(f"{edge.url}/api/tills/till-1")).status_code == 200  # the owner still gets in


async def test_the_lock_screen_keeps_the_login_and_only_the_users_pin_unlocks_it(
        store_config: StoreConfig, http: httpx.AsyncClient) -> None:
    async with running_edge(store_config) as edge:
        till = f"{edge.url}/api/tills/till-1"
        await log_in_at(http, till, "alice")
        await http.post(f"{till}/lines", json={"barcode": COFFEE})
        locked = await http.post(f"{till}/lock", json={})
        assert locked.status_code == 200 and locked.json()["locked"] is True
        refused = await http.post(f"{till}/lines", json={"barcode": MILK})
        assert refused.status_code == 423 and refused.json()["error"] == \
            "till till-1 is locked: Alice Archer unlocks it with their PIN"
        assert (await http.get(till)).status_code == 423
        assert (await http.get(f"{till}/whoami")).json()["locked"] is True
        wrong = await http.post(f"{till}/unlock", json={"pin": "2222"})  # bob's PIN is not alice's
        assert wrong.status_code == 401
        unlocked = await http.post(f"{till}/unlock", json={"pin": "1111"})
        assert unlocked.status_code == 200 and unlocked.json()["locked"] is False
        state = (await http.get(till)).json()
        assert [line["sku"] for line in state["lines"]] == ["COF-250"]


async def test_a_logout_leaves_the_cart_and_the_next_cashiers_sale_is_theirs(
        store_config: StoreConfig, http: httpx.AsyncClient) -> None:
    async with running_edge(store_config) as edge:
        till = f"{edge.url}/api/tills/till-1"
        await log_in_at(http, till, "alice")
        cart = (await http.post(f"{till}/lines", json={"barcode": COFFEE})).json()
        alices_cookie = http.cookies["novapos_till_till-1"]
        left = await http.post(f"{till}/logout", json={})
        assert left.status_code == 200 and left.json()["session"] is None and left.json()["cart"] == cart["cart"]
        assert "novapos_till_till-1" not in http.cookies  # the page's cookie is cleared
        async with httpx.AsyncClient(timeout=10, cookies={"novapos_till_till-1": alices_cookie}) as old:
            assert (await old.get(till)).status_code == 401  # her token ended with the logout
        bob = await log_in_at(http, till, "bob")
        assert bob["cart"] == cart["cart"] and bob["lines"] == cart["lines"]
        await http.post(f"{till}/tenders", json={"amount_minor": 500})
        sale = (await http.post(f"{till}/complete", json={"cart": cart["cart"]})).json()
        assert sale["cashier"] == "bob" and sale["session"] == bob["session"]["id"]


async def test_a_user_the_hub_deactivates_is_logged_out_at_their_next_request(
        store_config: StoreConfig, http: httpx.AsyncClient) -> None:
    async with running_edge(store_config) as edge:
        till = f"{edge.url}/api/tills/till-1"
        await log_in_at(http, till, "alice")
        without_alice = staff_list(SEED_VERSION + 1)
        cache = StaffCache(staff_path(store_config.state_dir))  # as the staff actor keeps the hub's push
        try:
            cache.replace(dataclasses.replace(without_alice, users=tuple(
                user for user in without_alice.users if user.login != "alice")))
        finally:
            cache.close()
        ended = await http.get(till)
        assert ended.status_code == 401 and "alice is no longer on this store's staff list" in ended.json()["error"]
        assert (await edge.tree.ask("till.till-1", "state"))["session"] is None
        assert (await http.post(f"{till}/login", json=ALICE)).status_code == 401


async def test_a_login_survives_a_kill_9_of_the_edge(
        tmp_path: Path, nats_server: EmbeddedNats, printer: MockNetworkPrinter, http: httpx.AsyncClient) -> None:
    box = store_box(tmp_path, [printer_rule(printer.port)])
    config, url = box.config, box.url
    till = f"{url}/api/tills/till-1"
    edge = await start_edge(config, nats_server, url, http)
    try:
        logged_in = await log_in_at(http, till, "bob")
        cart = (await http.post(f"{till}/lines", json={"barcode": COFFEE, "quantity": 2})).json()
        edge.send_signal(signal.SIGKILL)
        edge.wait()
        edge = await start_edge(config, nats_server, url, http)
        after = await http.get(till)  # the same browser, its cookie from before the kill: no PIN again
        assert after.status_code == 200, after.text
        assert after.json()["session"] == logged_in["session"] and after.json()["lines"] == cart["lines"]
        assert (await http.get(f"{till}/whoami")).json()["login"] == "bob"
    finally:
        edge.kill()
        edge.wait()


async def test_an_offline_login_reaches_the_hubs_audit_log_when_nats_is_back(
        store_config: StoreConfig, hub_config: HubConfig, nats_server: EmbeddedNats, database_url: str,
        http: httpx.AsyncClient) -> None:
    config = dataclasses.replace(store_config, login=LoginSettings(offline_after_s=1))
    async with trio.open_nursery() as nursery:
        await nursery.start(run_hub, hub_config)
        await trio.to_thread.run_sync(nats_server.stop)
        async with running_edge(config) as edge:
            await trio.sleep(1.2)  # the hub has not confirmed the staff list for longer than offline_after_s
            state = await log_in(http, edge.url, "till-2", "sam")
            assert state["session"]["offline"] is True
            assert len(audited(config, "till.offline_login")) == 1
            await trio.to_thread.run_sync(nats_server.start)
            rows = await wait_until(lambda: query(
                database_url, "SELECT actor, store, target, details FROM audit_records WHERE action = $1",
                "till.offline_login"), timeout=30)
            assert [(row["actor"], row["store"], row["target"]) for row in rows] == [
                ("sam", "store-001", state["session"]["id"])]
        nursery.cancel_scope.cancel()


def test_the_login_settings_are_read_bounded_and_consistent(tmp_path: Path) -> None:
    demo = (CONFIGS / "demo-store.toml").read_text()
    assert load_store(CONFIGS / "demo-store.toml").login == LoginSettings()
    path = tmp_path / "store.toml"
    path.write_text(demo.replace("lockout_s = 900", "lockout_s = 60"))
    assert load_store(path).login.lockout_s == 60
    for old, new, says in (("lockout_after = 5", "lockout_after = 0", "from 1 to 100"),
                           ("lockout_s = 900", 'lockout_s = "900"', "whole number"),
                           ("offline_grace_s = 86400", "offline_grace_s = 60", "must be at least offline_after_s"),
                           ("lockout_after = 5", "lockout_afte = 5", "unknown setting")):
        path.write_text(demo.replace(old, new))
        with pytest.raises(ConfigError, match=says):
            load_store(path)


def test_a_run_of_wrong_pins_is_forgotten_after_the_lockout_time_and_its_row_purged(tmp_path: Path) -> None:
    seed_staff(tmp_path)
    logins = LoginActor(tmp_path, LoginSettings(lockout_after=3, lockout_s=1))
    logins.started()
    try:
        assert logins.failed("mallory-1", "till-1") is None and logins.failed("mallory-1", "till-1") is None
        time.sleep(1.1)
        assert logins.failed("mallory-2", "till-1") is None  # purges mallory-1's forgotten run
        assert logins.failed("mallory-1", "till-1") is None  # a third wrong PIN, but the first of a new run
        db = sqlite3.connect(staff_path(tmp_path))
        rows = db.execute("SELECT login, failures FROM pin_failures ORDER BY login").fetchall()
        db.close()
        assert rows == [("mallory-1", 1), ("mallory-2", 1)]
    finally:
        logins.stopping()
