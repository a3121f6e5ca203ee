"""The edge's side of the staff list, against real NATS and a real edge, a stand-in hub answering its requests:
asked again as soon as the link is back after NATS went away (not at the next refresh), an older or another
store's or malformed list never replacing the one kept, /healthz saying which version the tills use."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from nats.aio.msg import Msg

from actors.staff.cache import StaffCache, staff_path
from edge.app import run_edge
from edge_runtime import AsyncioSeam
from novapos.config import ConfigError, StoreConfig, load_store
from novapos.demo.embedded_nats import EmbeddedNats
from novapos.wire.staff import StaffList, StaffMember, encode_list, staff_request_subject, staff_subject
from tests.conftest import CONFIGS, wait_until
from tests.pos import unseed_staff

VERIFIER = "scrypt$14$8$1$c2FsdA$aGFzaA"


def _list(version: int, *logins: str, store: str = "store-001") -> StaffList:
    return StaffList("demo", store, version, tuple(StaffMember(login, login.title(), ("cashier",), VERIFIER)
                                                   for login in logins))


async def test_the_edge_asks_again_when_its_link_is_back_and_keeps_only_newer_lists(
        nats_server: EmbeddedNats, store_config: StoreConfig) -> None:
    config = dataclasses.replace(store_config, staff_refresh_s=3600.0)  # only a reconnect may ask again
    unseed_staff(config.state_dir)  # the stand-in hub's lists, from version 1
    answer = {"list": _list(1, "carl", "eve")}
    link = nats_server.hub_link("stand-in-hub")

    async def serve() -> None:
        await link.connect()

        async def respond(message: Msg) -> None:
            await message.respond(encode_list(answer["list"]))
        await link.client.subscribe(staff_request_subject("demo", "store-001"), cb=respond)
        await link.client.flush()

    async def publish(data: bytes) -> None:
        await link.client.publish(staff_subject("demo", "store-001"), data)
        await link.client.flush()

    with AsyncioSeam() as seam:
        await seam.run(serve)
        async with trio.open_nursery() as nursery:
            edge = await nursery.start(run_edge, config)

            async def status() -> dict[str, Any]:
                found: dict[str, Any] = await edge.tree.ask("staff", "status")
                return found

            async def version_is(version: int) -> bool:
                return (await status())["staff_version"] == version

            await wait_until(lambda: version_is(1), timeout=15)
            for stale in (encode_list(_list(1)), encode_list(_list(0)), encode_list(_list(9, "x", store="store-002")),
                          b"\xc1 not msgpack"):
                await seam.run(publish, stale)
            await seam.run(publish, encode_list(_list(2, "carl", "eve", "finn")))
            await wait_until(lambda: version_is(2), timeout=5)
            assert (await status())["staff_people"] == 3

            await trio.to_thread.run_sync(nats_server.stop)
            answer["list"] = _list(3, "eve")  # changed while the store was cut off: its publish is lost
            await trio.sleep(1.5)
            await trio.to_thread.run_sync(nats_server.start)
            with trio.fail_after(20):  # far below the hour's refresh: the reconnect asked
                await wait_until(lambda: version_is(3), timeout=20)
            async with httpx.AsyncClient(base_url=edge.url) as till:
                health = (await till.get("/healthz")).json()
            assert (health["staff_version"], health["staff_people"]) == (3, 1) and health["staff_age_s"] < 20
            assert await edge.tree.ask("staff", "lookup", "carl") is None
            assert (await edge.tree.ask("staff", "lookup", "EVE"))["roles"] == ["cashier"]
            nursery.cancel_scope.cancel()
        await seam.run(link.close)
    _kept_across_restart(staff_path(config.state_dir))


def _kept_across_restart(path: Path) -> None:
    cache = StaffCache(path)
    try:
        assert cache.version() == 3 and cache.lookup("eve") is not None and cache.lookup("finn") is None
        assert not cache.replace(_list(2, "carl"))  # an older list, however it arrives, changes nothing
        assert cache.lookup("carl") is None
    finally:
        cache.close()


def test_the_staff_refresh_setting_is_read_and_bounded(tmp_path: Path) -> None:
    demo = (CONFIGS / "demo-store.toml").read_text()
    path = tmp_path / "store.toml"
    assert load_store(CONFIGS / "demo-store.toml").staff_refresh_s == 60.0
    path.write_text("staff_refresh_s = 15\n" + demo)
    assert load_store(path).staff_refresh_s == 15.0
    for bad, says in (("0", "from 1 to 86400"), ("2.5", "whole number"), ('"60"', "whole number")):
        path.write_text(f"staff_refresh_s = {bad}\n" + demo)
        with pytest.raises(ConfigError, match=says):
            load_store(path)
