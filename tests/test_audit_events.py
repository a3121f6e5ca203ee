"""A store's privileged actions reach the tenant's audit chain through the real path: the store's outbox,
its forwarder logged in to NATS as the store, JetStream, the hub's inbox. A replay appends nothing twice; a
body the schema refuses is dead-lettered with the reason; the hub signs a checkpoint of the grown chain."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

import trio

from actors.protocol import Rejected
from actors.storage.audit import audit_body, record_at_store
from actors.storage.db import FILE_NAME
from actors.storage.forwarder import ForwarderActor
from actors.storage.outbox import Committed, OutboxActor
from edge_runtime import AsyncioSeam, ChildSpec, SupervisorSpec, Tree, supervision_tree
from hub.app import run_hub
from hub.audit import checkpoints
from hub.audit.verify import verify
from hub.db import close_pool, create_pool
from novapos.adapters.nats import NatsLink, store_inbox_prefix
from novapos.config import HubConfig
from novapos.config.hub import AuditSettings
from novapos.demo.embedded_nats import EmbeddedNats
from novapos.wire.envelope import Envelope
from novapos.wire.ids import uuid7
from novapos.wire.subjects import event_subject
from tests.conftest import query, wait_until
from tests.events import publish
from tests.stock_world import build_world


@asynccontextmanager
async def _store(path: Path, nats_server: EmbeddedNats) -> AsyncIterator[Tree]:
    """store-001's outbox and forwarder, logged in to NATS with the store's own credentials."""
    link = NatsLink(nats_server.url, "test-edge", credentials=nats_server.store_credentials("demo", "store-001"),
                    inbox_prefix=store_inbox_prefix("demo", "store-001"), tls=nats_server.client_tls())
    with AsyncioSeam() as seam:
        spec = SupervisorSpec("test", children=[ChildSpec("outbox", OutboxActor, (path, "demo", "store-001")),
                                                ChildSpec("forwarder", ForwarderActor, (seam, link))])
        try:
            async with supervision_tree(spec) as tree:
                yield tree
        finally:
            await seam.run(link.close)


def _event(seq: int, body: dict[str, object]) -> Envelope:
    return Envelope(id=uuid7(), type="audit.recorded", v=1, tenant="demo", store="store-001", seq=seq,
                    ts=1_790_000_000_000, body=body)


async def _verified(database_url: str, folder: Path) -> str:
    import asyncio

    async def run() -> str:
        pool = await create_pool(database_url, max_size=1)
        try:
            return (await verify(pool, "demo", folder)).sentence()
        finally:
            await close_pool(pool)
    return await trio.to_thread.run_sync(asyncio.run, run())


async def test_store_audit_records_travel_the_outbox_to_the_chain_once_and_bad_ones_dead_letter(
        hub_config: HubConfig, nats_server: EmbeddedNats, tmp_path: Path) -> None:
    folder = tmp_path / "checkpoints"
    config = dataclasses.replace(hub_config, audit=AuditSettings(checkpoint_dir=folder, checkpoint_interval_s=1))
    async with trio.open_nursery() as nursery:
        await nursery.start(run_hub, config)
        await build_world(config.database_url)
        async with _store(tmp_path / FILE_NAME, nats_server) as tree:
            override = await trio.to_thread.run_sync(lambda: record_at_store(
                tree.registry, "till.override", "bob", "till-1", approver="mia", target="COF-250",
                reason="damaged box", details={"from_minor": 499, "to_minor": 399, "customer_name": "Ann Smith"}))
            no_sale = await trio.to_thread.run_sync(lambda: record_at_store(
                tree.registry, "drawer.no_sale", "bob", "till-1"))
            refused = await trio.to_thread.run_sync(lambda: record_at_store(
                tree.registry, "price.set", "bob", "till-1"))
            assert isinstance(override, Committed) and isinstance(no_sale, Committed)
            assert isinstance(refused, Rejected) and refused.reason == "invalid" and "action" in refused.message

            async def store_records() -> list[object]:
                rows = await query(config.database_url, "SELECT seq FROM audit_records WHERE store = 'store-001'")
                return rows if len(rows) == 2 else []
            await wait_until(store_records)

        # A replay of an applied event (same id) and a forged body straight onto the store's subject.
        replayed = _event(50, audit_body("till.void", "bob", "till-2"))
        forged = _event(51, {**audit_body("till.void", "bob", "till-2"), "action": "role.granted"})
        subject = event_subject("demo", "store-001", "audit.recorded")
        await publish(nats_server, [(subject, replayed.encode(), None), (subject, replayed.encode(), None),
                                    (subject, forged.encode(), None)])

        async def dead_lettered() -> list[object]:
            return list(await query(config.database_url, "SELECT reason FROM dead_letters"))
        [letter] = await wait_until(dead_lettered)
        assert "role.granted" in letter["reason"] and "store's audit action" in letter["reason"]

        async def replay_applied() -> list[object]:
            return list(await query(config.database_url, "SELECT 1 FROM inbox WHERE event_id = $1", replayed.id))
        await wait_until(replay_applied)

        async def signed() -> object:
            found = checkpoints.latest(folder, "demo")
            return found is not None and found.length >= 3 and found
        await wait_until(signed)
        nursery.cancel_scope.cancel()

    rows = await query(config.database_url, "SELECT seq, at, actor, action, store, target, details::text AS details"
                                            " FROM audit_records WHERE store = 'store-001' ORDER BY seq")
    assert [(row["action"], row["actor"], row["target"]) for row in rows] == [
        ("till.override", "bob", "COF-250"), ("drawer.no_sale", "bob", None), ("till.void", "bob", None)]
    details = json.loads(rows[0]["details"])
    assert details["till"] == "till-1" and details["approver"] == "mia" and details["reason"] == "damaged box"
    assert details["event"] == str(override.id) and details["event_seq"] == override.seq
    assert details["customer_name"].startswith("sha256:") and "Ann" not in rows[0]["details"]
    assert rows[2]["at"] == datetime.fromtimestamp(replayed.ts / 1000, tz=UTC)  # the till's time, not the hub's
    kept = await query(config.database_url, "SELECT value::text AS value FROM audit_personal WHERE seq = $1",
                       rows[0]["seq"])
    assert [row["value"] for row in kept] == ['"Ann Smith"']
    assert "is intact" in await _verified(config.database_url, folder)
