"""The hub creates the events stream when it is missing, with the limits of its TOML, and never
weakens (or touches) a stream an operator configured."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path
from typing import Any

import nats
import pytest
import trio
from nats.js.api import DiscardPolicy, StorageType, StreamConfig

from hub.app import run_hub
from novapos.adapters.nats import Outgoing
from novapos.config import ConfigError, HubConfig, load_hub
from novapos.config.hub import StreamLimits
from novapos.demo.embedded_nats import EmbeddedNats
from novapos.wire.subjects import EVENTS_FILTER, EVENTS_STREAM
from tests.conftest import CONFIGS, query, wait_until
from tests.events import SUBJECT, publish, sale_event


def _stream(nats_server: EmbeddedNats, create: StreamConfig | None = None) -> Any:
    async def run() -> Any:
        client = await nats.connect(nats_server.url, **nats_server.hub_options())
        try:
            if create is not None:
                await client.jetstream().add_stream(create)
            return (await client.jetstream().stream_info(EVENTS_STREAM)).config
        finally:
            await client.close()
    return asyncio.run(run())


async def test_an_operators_stream_limits_survive_a_hub_start(
        hub_config: HubConfig, nats_server: EmbeddedNats, database_url: str) -> None:
    operator = StreamConfig(name=EVENTS_STREAM, subjects=[EVENTS_FILTER], storage=StorageType.FILE,
                            max_age=3 * 86400.0, max_bytes=50_000_000, max_msgs=1_000_000, duplicate_window=600.0)
    before = await trio.to_thread.run_sync(_stream, nats_server, operator)
    async with trio.open_nursery() as nursery:
        await nursery.start(run_hub, hub_config)
        event = sale_event()
        await publish(nats_server, [(SUBJECT, event.encode(), None)])
        await wait_until(lambda: query(database_url, "SELECT 1 FROM sales WHERE event_id = $1", event.id))
        nursery.cancel_scope.cancel()
    after = await trio.to_thread.run_sync(_stream, nats_server)
    assert (after.max_age, after.max_bytes, after.max_msgs, after.duplicate_window) == \
        (before.max_age, before.max_bytes, before.max_msgs, before.duplicate_window) == \
        (3 * 86400.0, 50_000_000, 1_000_000, 600.0)


async def test_a_missing_stream_is_created_with_the_shipped_limits(
        nats_server: EmbeddedNats, database_url: str, hub_config: HubConfig) -> None:
    shipped = load_hub(CONFIGS / "hub.toml")
    config = dataclasses.replace(hub_config, stream=shipped.stream)
    async with trio.open_nursery() as nursery:
        await nursery.start(run_hub, config)
        nursery.cancel_scope.cancel()
    created = await trio.to_thread.run_sync(_stream, nats_server)
    assert created.max_age == shipped.stream.max_age_days * 86400 > 0
    assert created.max_bytes == shipped.stream.max_bytes > 0
    assert created.num_replicas == shipped.stream.replicas
    assert created.duplicate_window == shipped.stream.duplicate_window_s >= 120
    assert created.discard == DiscardPolicy.NEW  # a full stream refuses; it never drops unapplied sales


async def test_a_full_stream_refuses_new_events_and_keeps_the_unapplied_ones(nats_server: EmbeddedNats) -> None:
    """The stores keep what a full stream refuses in their outbox; the stream never drops its oldest events,
    which may be sales the hub has not applied yet (the hub being down is when a stream fills up)."""
    async def run() -> tuple[list[str], Any]:
        link = nats_server.hub_link()
        await link.connect()
        try:
            await link.ensure_event_stream(StreamLimits(max_bytes=20_000))
            events = [sale_event() for _ in range(100)]
            published = await link.publish_batch(
                [Outgoing(str(event.id), SUBJECT, event.encode()) for event in events], timeout=5.0)
            first = await link.js.get_msg(EVENTS_STREAM, seq=1)
            return published.acked, (published.failure, first.data == events[0].encode(), [str(e.id) for e in events])
        finally:
            await link.close()
    acked, (failure, first_kept, ids) = await trio.to_thread.run_sync(asyncio.run, run())
    assert 0 < len(acked) < 100 and failure, "the full stream must refuse, not drop"
    assert acked == ids[:len(acked)] and first_kept


def test_stream_and_retention_settings_are_checked(tmp_path: Path) -> None:
    config = tmp_path / "hub.toml"
    config.write_text('[stream]\nmax_age_days = "14"\n')
    with pytest.raises(ConfigError, match=r"\[stream\] max_age_days must be a whole number"):
        load_hub(config)
    config.write_text("[dead_letters]\nretention_days = 0\n")
    with pytest.raises(ConfigError, match=r"\[dead_letters\] retention_days must be from 1"):
        load_hub(config)
