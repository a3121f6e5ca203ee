"""Signing in to the console against a real hub and PostgreSQL: a session cookie that is HttpOnly and
SameSite, a CSRF token changes must carry, the same answer for a wrong login and a wrong password, a lockout
after five failures, a cashier kept out, sign-out ending the session; each step in the tenant's audit chain."""

from __future__ import annotations

import dataclasses
import hashlib
import re
import time
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
import trio

from hub.app import run_hub
from hub.audit.chain import GENESIS, canonical
from novapos.config import ConfigError, ConsoleSettings, HubConfig, load_hub
from tests.conftest import query
from tests.identity import PASSWORD, add_user, grant, signed_in
from tests.stock_world import build_world


async def test_sign_in_session_csrf_lockout_and_sign_out_are_enforced_and_audited(hub_config: HubConfig) -> None:
    async with trio.open_nursery() as nursery:
        hub = await nursery.start(run_hub, hub_config)
        await build_world(hub_config.database_url)
        await add_user(hub_config.database_url, "ada", grant("tenant_admin"))
        await add_user(hub_config.database_url, "carl", grant("cashier", "store-001"))
        async with httpx.AsyncClient(base_url=hub.url, timeout=10) as anonymous:
            assert (await anonymous.get("/api/session")).status_code == 401
            wrong_password = await anonymous.post("/api/login", json={"login": "ada", "password": "nope"})
            wrong_login = await anonymous.post("/api/login", json={"login": "nobody", "password": "nope"})
            assert wrong_password.status_code == wrong_login.status_code == 401
            assert wrong_password.json() == wrong_login.json()
            refused = await anonymous.post("/api/login", json={"login": "carl", "password": PASSWORD})
            assert refused.status_code == 403 and "till" in refused.json()["error"]
            bad = await anonymous.post("/api/login", json={"login": "ada\x00", "password": PASSWORD})
            assert bad.status_code == 422

        async with signed_in(hub.url, "ada") as ada:
            cookie = next(c for c in ada.cookies.jar if c.name == "novapos_console")
            assert cookie.has_nonstandard_attr("HttpOnly") and cookie.get_nonstandard_attr("SameSite") == "strict"
            session = (await ada.get("/api/session")).json()
            assert session["user"] == "ada" and "users.manage" in session["permissions"]
            forged = await ada.post("/api/logout", json={}, headers={"x-csrf-token": "guess"})
            assert forged.status_code == 403 and "CSRF" in forged.json()["error"]
            assert (await ada.post("/api/logout", json={})).status_code == 204
            ada.cookies.set("novapos_console", cookie.value or "")
            assert (await ada.get("/api/session")).status_code == 401

        async with httpx.AsyncClient(base_url=hub.url, timeout=10) as guesser:
            answers = [(await guesser.post("/api/login", json={"login": "ada", "password": f"guess {n}"})).status_code
                       for n in range(6)]
            assert answers == [401, 401, 401, 401, 429, 429]
            locked = await guesser.post("/api/login", json={"login": "ada", "password": PASSWORD})
            assert locked.status_code == 429 and "locked" in locked.json()["error"]
        nursery.cancel_scope.cancel()

    rows = await query(hub_config.database_url,
                       "SELECT seq, at, actor, action, store, target, details::text AS details, prev_hash, hash"
                       " FROM audit_records WHERE tenant = 'demo' ORDER BY seq")
    actions = [row["action"] for row in rows]
    assert actions[:2] == ["user.created", "user.created"]
    assert actions.count("login") == 1 and actions.count("logout") == 1 and actions.count("login.locked") == 1
    assert actions.count("login.failed") == 1 + 1 + 5  # wrong password, the cashier, the guesses
    previous = GENESIS
    for row in rows:
        body = canonical("demo", row["seq"], row["at"], row["actor"], row["action"], row["store"], row["target"],
                         row["details"])
        assert row["prev_hash"] == previous and row["hash"] == hashlib.sha256(previous + body).digest(), row["seq"]
        previous = row["hash"]
    assert [row["seq"] for row in rows] == list(range(1, len(rows) + 1))


async def test_console_settings_set_the_lockout_and_the_session_lifetime(hub_config: HubConfig) -> None:
    settings = ConsoleSettings(session_idle_minutes=30, session_absolute_minutes=60, lock_after=2, lock_for_minutes=1)
    url = hub_config.database_url
    async with trio.open_nursery() as nursery:
        hub = await nursery.start(run_hub, dataclasses.replace(hub_config, console=settings))
        await build_world(url)
        await add_user(url, "ada", grant("tenant_admin"))
        await add_user(url, "nora", grant("regional_admin", "north"))
        async with signed_in(hub.url, "ada") as ada:
            cookie = next(c for c in ada.cookies.jar if c.name == "novapos_console")
            assert cookie.expires is not None and cookie.expires - time.time() < 3601
            await query(url, "UPDATE console_sessions SET created_at = now() - interval '59 minutes'")
            assert (await ada.get("/api/session")).status_code == 200
            await query(url, "UPDATE console_sessions SET created_at = now() - interval '61 minutes'")
            assert (await ada.get("/api/session")).status_code == 401  # past the absolute lifetime
        async with signed_in(hub.url, "ada") as ada:
            await query(url, "UPDATE console_sessions SET expires_at = now() - interval '1 second'")
            assert (await ada.get("/api/session")).status_code == 401  # idle past its deadline
        async with httpx.AsyncClient(base_url=hub.url, timeout=10) as guesser:
            answers = [(await guesser.post("/api/login", json={"login": "nora", "password": f"guess {n}"})).status_code
                       for n in range(3)]
        assert answers == [401, 429, 429]
        nursery.cancel_scope.cancel()
    [row] = await query(url, "SELECT locked_until - now() AS left FROM users WHERE login = 'nora'")
    assert timedelta(0) < row["left"] <= timedelta(minutes=1)


def test_the_console_section_of_the_hub_config_is_read_and_bounded(tmp_path: Path) -> None:
    path = tmp_path / "hub.toml"
    path.write_text("[console]\nsession_idle_minutes = 10\nsession_absolute_minutes = 120\nlock_after = 3\n"
                    "lock_for_minutes = 30\n")
    assert load_hub(path).console == ConsoleSettings(10, 120, 3, 30)
    path.write_text("")
    assert load_hub(path).console == ConsoleSettings()
    for bad, says in (("lock_after = 0", "from 1 to 100"), ("session_idle_minutes = 1.5", "whole number"),
                      ("lock_for = 5", "unknown setting(s) [console] lock_for")):
        path.write_text(f"[console]\n{bad}\n")
        with pytest.raises(ConfigError, match=re.escape(says)):
            load_hub(path)
