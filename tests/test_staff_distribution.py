"""Staff lists from the hub to the stores, against a real hub, PostgreSQL, NATS and edge: a store's list
holds only its own people (with their roles there, and PIN verifiers), a deactivation reaches a running
edge's cache within seconds, the list survives the edge's restart for offline logins, and NATS itself
refuses a store another store's list (neither its subject nor its request)."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import nats
import trio

from actors.staff.cache import StaffCache, staff_path
from edge.app import run_edge
from hub.app import run_hub
from novapos.adapters.nats import store_inbox_prefix
from novapos.config import HubConfig, StoreConfig
from novapos.demo.embedded_nats import EmbeddedNats
from novapos.passwords import check
from novapos.wire.staff import decode_list, staff_request_subject, staff_subject
from tests.conftest import wait_until
from tests.identity import PIN, add_user, grant, signed_in
from tests.pos import unseed_staff
from tests.stock_world import build_world

REACHES_WITHIN_S = 5.0


async def _world(database_url: str) -> None:
    await build_world(database_url)
    await add_user(database_url, "ada", grant("tenant_admin"), pin=PIN)
    await add_user(database_url, "carl", grant("cashier", "store-001"), pin=PIN, password=None)
    await add_user(database_url, "eve", grant("cashier", "store-001"), grant("supervisor", "store-002"), pin=PIN)
    await add_user(database_url, "mia", grant("store_manager", "store-001"))  # no PIN: no till login
    await add_user(database_url, "dora", grant("cashier", "store-003"), pin=PIN)


async def test_a_deactivation_reaches_the_running_edge_within_seconds(hub_config: HubConfig,
                                                                     store_config: StoreConfig) -> None:
    unseed_staff(store_config.state_dir)  # the hub's own list, not the tests' alice and bob
    async with trio.open_nursery() as nursery:
        hub = await nursery.start(run_hub, hub_config)
        await _world(hub_config.database_url)
        edge = await nursery.start(run_edge, store_config)

        async def lookup(login: str) -> dict[str, object] | None:
            found: dict[str, object] | None = await edge.tree.ask("staff", "lookup", login)
            return found

        await wait_until(lambda: lookup("carl"), timeout=15)
        carl = await lookup("carl")
        eve = await lookup("eve")
        assert carl is not None and carl["roles"] == ["cashier"]
        assert eve is not None and eve["roles"] == ["cashier"]  # her supervisor role is at store-002's, not here
        assert await trio.to_thread.run_sync(check, PIN, str(carl["pin_verifier"]))
        for stranger in ("ada", "mia", "dora"):  # a tenant admin, no PIN, another store's cashier
            assert await lookup(stranger) is None
        async with httpx.AsyncClient(base_url=edge.url) as till:
            health = (await till.get("/healthz")).json()
        assert health["staff_people"] == 2 and health["staff_version"] >= 5 and health["staff_age_s"] < 60

        async with signed_in(hub.url, "ada") as ada:
            started = time.monotonic()
            assert (await ada.post("/api/users/carl/changes", json={"active": False})).status_code == 200
            await wait_until(lambda: _gone(lookup, "carl"), timeout=REACHES_WITHIN_S)
            took = time.monotonic() - started
            assert took < REACHES_WITHIN_S
            # a PIN set and a role granted reach it the same way
            assert (await ada.post("/api/users/mia/changes", json={"pin": "8152"})).status_code == 200
            await wait_until(lambda: lookup("mia"), timeout=REACHES_WITHIN_S)
            assert (await ada.post("/api/users/dora/roles", json={"role": "supervisor", "store": "store-001"})
                    ).status_code == 200
            await wait_until(lambda: lookup("dora"), timeout=REACHES_WITHIN_S)
            assert (await lookup("dora") or {})["roles"] == ["supervisor"]
        nursery.cancel_scope.cancel()

    cache = StaffCache(staff_path(store_config.state_dir))  # what an offline restart logs in from
    try:
        assert cache.lookup("carl") is None and cache.lookup("eve") is not None and cache.lookup("dora") is not None
    finally:
        cache.close()


async def _gone(lookup, login: str) -> bool:  # type: ignore[no-untyped-def]
    return await lookup(login) is None


async def test_a_store_cannot_receive_another_stores_list(hub_config: HubConfig, nats_server: EmbeddedNats) -> None:
    async with trio.open_nursery() as nursery:
        await nursery.start(run_hub, hub_config)
        await _world(hub_config.database_url)
        seed: Path = nats_server.store_credentials("demo", "store-001")

        def scenario() -> tuple[list[str], bytes, str]:
            import asyncio

            async def run() -> tuple[list[str], bytes, str]:
                errors: list[str] = []

                async def record(exc: Exception) -> None:
                    errors.append(str(exc).lower())
                client = await nats.connect(nats_server.url, nkeys_seed=str(seed), error_cb=record,
                                            inbox_prefix=store_inbox_prefix("demo", "store-001"),
                                            **nats_server.client_options())
                try:
                    own = await client.request(staff_request_subject("demo", "store-001"), b"", timeout=5)
                    await client.subscribe(staff_subject("demo", "store-002"))
                    await client.subscribe("novapos.demo.*.staff")
                    await client.flush()
                    try:
                        await client.request(staff_request_subject("demo", "store-002"), b"", timeout=1)
                        other = "answered"
                    except Exception as exc:
                        other = type(exc).__name__
                    await asyncio.sleep(0.5)
                    return errors, own.data, other
                finally:
                    await client.close()
            return asyncio.run(run())

        errors, own, other = await trio.to_thread.run_sync(scenario)
        nursery.cancel_scope.cancel()
    staff = decode_list(own)
    assert (staff.tenant, staff.store) == ("demo", "store-001")
    assert sorted(user.login for user in staff.users) == ["carl", "eve"]
    assert other != "answered"
    assert any("permissions violation for subscription to \"novapos.demo.store-002.staff\"" in e for e in errors), errors
    assert any("permissions violation for subscription to \"novapos.demo.*.staff\"" in e for e in errors), errors
    assert any("permissions violation for publish to \"novapos.demo.store-002.req.staff\"" in e for e in errors), errors
