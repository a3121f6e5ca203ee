"""JetStream's own view of the hub's work, polled into Prometheus gauges (roadmap P0-05): how far the shared
ingest consumer is behind the stream (messages not yet delivered to any hub), how many it delivered and
still waits to see acknowledged, how many it is redelivering, and how many messages and bytes each stream
the hub serves holds (the events stream, each tenant's catalog stream).

A service every hub process runs (hub.domains.Service): each asks NATS every POLL_EVERY_S and exports the
same figures whichever process asks (fold them with max by (stream, consumer)). A stream or consumer that
does not exist (yet: the ingest subscription binds after start; or any more: deleted on the NATS side) has
no series; while NATS does not answer, none has any (a figure that may be stale is not exported), the
failure is logged once and counted in novapos_hub_jetstream_poll_errors_total.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import nats.js.errors
import trio
from prometheus_client import Counter, Gauge

from edge_runtime import Backoff
from hub.console.context import Console
from novapos.adapters.nats import INGEST_CONSUMER, NatsLink
from novapos.wire.catalog import catalog_stream
from novapos.wire.subjects import EVENTS_STREAM

log = logging.getLogger(__name__)

POLL_EVERY_S = 10.0
RETRY = Backoff(initial=POLL_EVERY_S, maximum=60.0)
"""While NATS does not answer: POLL_EVERY_S, then less and less often."""
CONSUMERS = ((EVENTS_STREAM, INGEST_CONSUMER),)
"""(stream, durable consumer) of every JetStream consumer the hub reads through."""

PENDING = Gauge("novapos_hub_jetstream_consumer_pending_messages",
                "Messages of the stream the consumer has not delivered yet (the hub's lag behind the stores)",
                ["stream", "consumer"])
ACK_PENDING = Gauge("novapos_hub_jetstream_consumer_ack_pending_messages",
                    "Messages delivered to a hub and not acknowledged yet (being applied, or lost with a hub "
                    "until the ack wait gives them back)", ["stream", "consumer"])
REDELIVERED = Gauge("novapos_hub_jetstream_consumer_redelivered_messages",
                    "Messages delivered more than once and not acknowledged yet (batches given back, held events)",
                    ["stream", "consumer"])
STREAM_MESSAGES = Gauge("novapos_hub_jetstream_stream_messages", "Messages the stream holds", ["stream"])
STREAM_BYTES = Gauge("novapos_hub_jetstream_stream_bytes", "Bytes the stream holds", ["stream"])
POLL_ERRORS = Counter("novapos_hub_jetstream_poll_errors_total",
                      "Polls of JetStream's stream and consumer info that failed (NATS away or refusing)")
GAUGES = (PENDING, ACK_PENDING, REDELIVERED, STREAM_MESSAGES, STREAM_BYTES)


@dataclass(frozen=True)
class ConsumerState:
    pending: int
    ack_pending: int
    redelivered: int


@dataclass(frozen=True)
class StreamState:
    messages: int
    bytes: int


@dataclass(frozen=True)
class Poll:
    streams: dict[str, StreamState]
    consumers: dict[tuple[str, str], ConsumerState]


async def poll(link: NatsLink, streams: tuple[str, ...],
               consumers: tuple[tuple[str, str], ...] = CONSUMERS) -> Poll:
    """(asyncio side) What JetStream says of `streams` and `consumers` now; those it does not know are left out.
    Raises for anything else (NATS away, a refusal, a timeout)."""
    found_streams: dict[str, StreamState] = {}
    for stream in streams:
        try:
            state = (await link.js.stream_info(stream)).state
        except nats.js.errors.NotFoundError:
            continue
        found_streams[stream] = StreamState(state.messages, state.bytes)
    found_consumers: dict[tuple[str, str], ConsumerState] = {}
    for stream, consumer in consumers:
        try:
            info = await link.js.consumer_info(stream, consumer)
        except nats.js.errors.NotFoundError:
            continue
        found_consumers[(stream, consumer)] = ConsumerState(
            info.num_pending or 0, info.num_ack_pending or 0, info.num_redelivered or 0)
    return Poll(found_streams, found_consumers)


def export(result: Poll | None) -> None:
    """Make the gauges say `result` exactly (None: nothing known); series of what vanished go."""
    for gauge in GAUGES:
        gauge.clear()
    if result is None:
        return
    for stream, state in result.streams.items():
        STREAM_MESSAGES.labels(stream).set(state.messages)
        STREAM_BYTES.labels(stream).set(state.bytes)
    for (stream, consumer), consumer_state in result.consumers.items():
        PENDING.labels(stream, consumer).set(consumer_state.pending)
        ACK_PENDING.labels(stream, consumer).set(consumer_state.ack_pending)
        REDELIVERED.labels(stream, consumer).set(consumer_state.redelivered)


async def watch_jetstream(console: Console) -> None:
    """The service: poll every POLL_EVERY_S, back off while NATS does not answer; never raises."""
    streams = (EVENTS_STREAM, *(catalog_stream(tenant) for tenant in sorted(console.tenants)))
    failures = 0
    while True:
        try:
            result = await console.seam.run(poll, console.link, streams)
        except Exception as exc:
            failures += 1
            POLL_ERRORS.inc()
            export(None)
            if failures == 1:
                log.warning("cannot read JetStream's stream and consumer info (%s: %s): the consumer lag gauges are "
                            "empty until it answers; check NATS if this lasts", type(exc).__name__, exc)
            await trio.sleep(max(POLL_EVERY_S, RETRY.delay(failures)))
            continue
        if failures:
            log.info("JetStream's stream and consumer info answers again after %d failed poll(s)", failures)
            failures = 0
        export(result)
        await trio.sleep(POLL_EVERY_S)
