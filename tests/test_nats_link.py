"""The edge's JetStream publishing: dedup by event id, but never across stores."""

from __future__ import annotations

import asyncio

import trio

from novapos.adapters.nats import Outgoing
from novapos.demo.embedded_nats import EmbeddedNats
from novapos.wire.subjects import EVENTS_STREAM, event_subject
from tests.events import sale_event


async def _publish_and_count(nats_server: EmbeddedNats, batches: list[list[Outgoing]]) -> tuple[list[list[str]], int]:
    async def run() -> tuple[list[list[str]], int]:
        link = nats_server.hub_link()  # the hub's rights: NATS itself would refuse a store the impostor's subject
        await link.connect()
        await link.ensure_event_stream()
        acked = [(await link.publish_batch(batch, timeout=2.0)).acked for batch in batches]
        stored = (await link.js.stream_info(EVENTS_STREAM)).state.messages
        await link.close()
        return acked, stored
    return await trio.to_thread.run_sync(asyncio.run, run())


async def test_a_resend_is_stored_once_but_another_store_cannot_claim_the_id(nats_server: EmbeddedNats) -> None:
    event = sale_event()
    own = Outgoing(str(event.id), event_subject("demo", "store-001", "sale.completed"), event.encode())
    impostor = Outgoing(str(event.id), event_subject("demo", "store-999", "sale.completed"), b"whatever")
    acked, stored = await _publish_and_count(nats_server, [[impostor], [own], [own]])
    assert acked == [[str(event.id)]] * 3
    assert stored == 2  # the impostor's and store-001's own; the resend was deduplicated
