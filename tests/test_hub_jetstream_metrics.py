"""The hub's JetStream gauges (P0-05): what the poll reads of the events stream and the shared ingest consumer as
messages arrive, are delivered, acknowledged and given back; what it leaves out (a stream or consumer that does
not exist); and the service's answer to a NATS it cannot reach (no figures at all, the failure counted)."""

from __future__ import annotations

import asyncio

import trio
from prometheus_client import REGISTRY

from edge_runtime import AsyncioSeam
from hub.console.context import Console
from hub.ingest import jetstream
from hub.ingest.jetstream import ConsumerState, Poll, StreamState, export, poll, watch_jetstream
from novapos.adapters.nats import INGEST_CONSUMER, NatsLink
from novapos.demo.embedded_nats import EmbeddedNats
from novapos.wire.catalog import catalog_stream
from novapos.wire.subjects import EVENTS_STREAM
from tests.events import SUBJECT, sale_event

STREAMS = (EVENTS_STREAM, catalog_stream("demo"))
CONSUMER = (EVENTS_STREAM, INGEST_CONSUMER)


def gauge(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


def test_the_poll_follows_lag_acks_and_redeliveries(nats_server: EmbeddedNats) -> None:
    async def scenario() -> list[Poll]:
        link = nats_server.hub_link()
        await link.connect()
        try:
            await link.ensure_event_stream()
            seen = [await poll(link, STREAMS)]  # no catalog stream, no consumer yet: both left out
            subscription = await link.ingest_subscription(10)
            for seq in range(1, 6):
                event = sale_event(seq)
                await link.js.publish(SUBJECT, event.encode(), headers={"Nats-Msg-Id": str(event.id)})
            seen.append(await poll(link, STREAMS))  # 5 waiting
            taken = await subscription.fetch(3, timeout=5)
            seen.append(await poll(link, STREAMS))  # 3 delivered, none acknowledged
            await taken[0].nak()
            await taken[1].ack_sync()
            again = await subscription.fetch(1, timeout=5)  # the nak'ed one comes back first
            assert again[0].metadata.sequence.stream == taken[0].metadata.sequence.stream
            seen.append(await poll(link, STREAMS))
            return seen
        finally:
            await link.close()

    empty, waiting, delivered, redelivered = asyncio.run(scenario())
    assert empty.consumers == {} and list(empty.streams) == [EVENTS_STREAM] and empty.streams[EVENTS_STREAM].messages == 0
    assert waiting.consumers == {CONSUMER: ConsumerState(pending=5, ack_pending=0, redelivered=0)}
    assert waiting.streams[EVENTS_STREAM].messages == 5 and waiting.streams[EVENTS_STREAM].bytes > 5 * 200
    assert delivered.consumers == {CONSUMER: ConsumerState(pending=2, ack_pending=3, redelivered=0)}
    assert redelivered.consumers == {CONSUMER: ConsumerState(pending=2, ack_pending=2, redelivered=1)}
    assert redelivered.streams[EVENTS_STREAM].messages == 5  # acknowledged is not removed: limits retention

    export(redelivered)
    labels = {"stream": EVENTS_STREAM, "consumer": INGEST_CONSUMER}
    assert [gauge(f"novapos_hub_jetstream_consumer_{name}_messages", **labels)
            for name in ("pending", "ack_pending", "redelivered")] == [2, 2, 1]
    assert gauge("novapos_hub_jetstream_stream_messages", stream=EVENTS_STREAM) == 5
    assert gauge("novapos_hub_jetstream_stream_messages", stream=catalog_stream("demo")) is None
    export(Poll({}, {}))  # the consumer deleted on the NATS side: its series go rather than stay at their last value
    assert gauge("novapos_hub_jetstream_consumer_pending_messages", **labels) is None


async def test_a_nats_out_of_reach_empties_the_gauges_and_counts_the_failure(
        monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(jetstream, "POLL_EVERY_S", 0.05)
    export(Poll({EVENTS_STREAM: StreamState(7, 700)}, {CONSUMER: ConsumerState(3, 1, 0)}))
    failed = gauge("novapos_hub_jetstream_poll_errors_total") or 0.0
    with AsyncioSeam() as seam:
        never_connected = NatsLink("nats://127.0.0.1:1", "hub")
        with trio.move_on_after(0.5):
            await watch_jetstream(Console(seam, never_connected, frozenset({"demo"})))
    assert (gauge("novapos_hub_jetstream_poll_errors_total") or 0.0) - failed >= 1
    assert gauge("novapos_hub_jetstream_stream_messages", stream=EVENTS_STREAM) is None
    assert gauge("novapos_hub_jetstream_consumer_pending_messages", stream=EVENTS_STREAM,
                 consumer=INGEST_CONSUMER) is None
