"""The hub link: a store's events reach JetStream in sequence order, without needing a wake-up, and a
lost link is said once (and its recovery once) and reported by status(); an outbox file locked by
another program is ridden out the same way, without a crash."""

from __future__ import annotations

import asyncio
import copy
import logging
import sqlite3
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import msgpack
import nats
import pytest
import trio

from actors.storage import forwarder
from actors.storage.db import FILE_NAME
from actors.storage.forwarder import ForwarderActor
from actors.storage.outbox import Outbox, OutboxActor
from edge_runtime import AsyncioSeam, Backoff, ChildSpec, SupervisorSpec, Tree, supervision_tree
from novapos.adapters.nats import SHIPPED_LIMITS, NatsLink, store_inbox_prefix
from novapos.demo.embedded_nats import EmbeddedNats
from novapos.wire.subjects import EVENTS_FILTER, EVENTS_STREAM
from tests.conftest import ensure_stream, wait_until
from tests.events import sale_event

SALE = sale_event().body


def _big_sale(lines: int) -> dict[str, Any]:
    """A valid sale whose envelope is well over 1 KB."""
    body = copy.deepcopy(SALE)
    line = body["lines"][0]
    body["lines"] = [{**copy.deepcopy(line), "sku": f"SKU-{number}"} for number in range(lines)]
    amount = line["amount"]["minor"] * lines
    body["total"]["minor"] = body["tenders"][0]["amount"]["minor"] = amount
    return body


@asynccontextmanager
async def _edge(path: Path, nats_server: EmbeddedNats) -> AsyncIterator[Tree]:
    """The store's outbox and its forwarder, as the edge runs them: logged in as the store."""
    link = NatsLink(nats_server.url, "test-edge", credentials=nats_server.store_credentials("demo", "store-001"),
                    inbox_prefix=store_inbox_prefix("demo", "store-001"), tls=nats_server.client_tls())
    with AsyncioSeam() as seam:
        spec = SupervisorSpec("test", children=[
            ChildSpec("outbox", OutboxActor, (path, "demo", "store-001")),
            ChildSpec("forwarder", ForwarderActor, (seam, link)),
        ])
        try:
            async with supervision_tree(spec) as tree:
                yield tree
        finally:
            await seam.run(link.close)


async def _on_nats(nats_server: EmbeddedNats, work: Any) -> Any:
    """Run `work(js)` with a plain nats-py client of the test's own (the hub's rights), on a worker thread's
    asyncio loop."""
    async def run() -> Any:
        client = await nats.connect(nats_server.url, **nats_server.hub_options())
        try:
            return await work(client.jetstream())
        finally:
            await client.close()
    return await trio.to_thread.run_sync(asyncio.run, run())


async def _stream_seqs(nats_server: EmbeddedNats) -> list[int]:
    """The store sequence numbers of the stream's messages, in stream order."""
    async def work(js: Any) -> list[int]:
        state = (await js.stream_info(EVENTS_STREAM)).state
        if state.messages == 0:
            return []
        return [msgpack.unpackb((await js.get_msg(EVENTS_STREAM, seq)).data)["seq"]
                for seq in range(state.first_seq, state.last_seq + 1)]
    return await _on_nats(nats_server, work)


def _failures() -> float:
    return forwarder.FORWARD_FAILURES._value.get()  # type: ignore[attr-defined,no-any-return]


async def test_a_sale_committed_without_a_wake_up_reaches_jetstream_within_the_idle_poll(
        tmp_path: Path, nats_server: EmbeddedNats) -> None:
    await ensure_stream(nats_server)
    async with _edge(tmp_path / FILE_NAME, nats_server) as tree:
        await tree.ask("outbox", "append", "sale.completed", 1, SALE)
        tree.tell("forwarder", "kick")
        await wait_until(lambda: _depth(tree, 0))  # that drain is done: the next is the idle poll
        await tree.ask("outbox", "append", "sale.completed", 1, SALE)  # no kick: nobody wakes the forwarder
        started = time.monotonic()
        await wait_until(lambda: _has(nats_server, [1, 2]), timeout=forwarder.IDLE_POLL_S + 2)
        assert time.monotonic() - started < forwarder.IDLE_POLL_S + 1.0


async def test_a_refused_publish_mid_batch_never_lets_a_later_sale_overtake_it(
        tmp_path: Path, nats_server: EmbeddedNats) -> None:
    async def small_messages_only(js: Any) -> None:
        await js.add_stream(name=EVENTS_STREAM, subjects=[EVENTS_FILTER], duplicate_window=SHIPPED_LIMITS.duplicate_window_s,
                            max_msg_size=1000)
    await _on_nats(nats_server, small_messages_only)
    outbox = Outbox(tmp_path / FILE_NAME, "demo", "store-001")  # a backlog of 8, the third too big for the stream
    for number in range(1, 9):
        outbox.append("sale.completed", 1, _big_sale(20) if number == 3 else SALE)
    outbox.close()
    failures = _failures()
    async with _edge(tmp_path / FILE_NAME, nats_server) as tree:
        await wait_until(lambda: _failures_above(failures))  # the stream refused seq 3 at least once

        async def lift_the_limit(js: Any) -> None:  # the operator fixes the stream
            info = await js.stream_info(EVENTS_STREAM)
            info.config.max_msg_size = -1
            await js.update_stream(info.config)
        await _on_nats(nats_server, lift_the_limit)
        await wait_until(lambda: _depth(tree, 0), timeout=30)
    assert await _stream_seqs(nats_server) == [1, 2, 3, 4, 5, 6, 7, 8]


async def test_a_lost_hub_link_is_said_once_reported_and_its_recovery_said_once(
        tmp_path: Path, nats_server: EmbeddedNats, caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    caplog.set_level(logging.INFO, logger=forwarder.__name__)
    monkeypatch.setattr(forwarder, "RETRY", Backoff(initial=0.05, maximum=0.5))  # retries come quicker
    await ensure_stream(nats_server)
    await trio.to_thread.run_sync(nats_server.stop)
    async with _edge(tmp_path / FILE_NAME, nats_server) as tree:
        status = await wait_until(lambda: _status(tree, "unreachable"))
        assert status["outbox_depth"] == 0 and status["oldest_unsent_age_s"] is None and status["since"]
        failures = _failures()
        for _ in range(3):  # the store sells on
            await tree.ask("outbox", "append", "sale.completed", 1, SALE)
            tree.tell("forwarder", "kick")
        await wait_until(lambda: _failures_above(failures + 2), timeout=20)  # retried, with backoff
        status = await tree.ask("forwarder", "status")
        assert status["hub_link"] == "unreachable" and status["outbox_depth"] == 3
        assert status["oldest_unsent_age_s"] >= 0

        await trio.to_thread.run_sync(nats_server.start)
        await wait_until(lambda: _status(tree, "connected"), timeout=30)
        await wait_until(lambda: _depth(tree, 0))

        await trio.to_thread.run_sync(nats_server.stop)  # lost while connected: the client reconnects itself
        await wait_until(lambda: _status(tree, "unreachable"), timeout=10)
        await tree.ask("outbox", "append", "sale.completed", 1, SALE)
        await trio.to_thread.run_sync(nats_server.start)
        await wait_until(lambda: _status(tree, "connected"), timeout=30)
        await wait_until(lambda: _depth(tree, 0))
    assert await _stream_seqs(nats_server) == [1, 2, 3, 4]
    said = [(record.levelno, record.getMessage()) for record in caplog.records
            if record.name == forwarder.__name__ and record.levelno >= logging.INFO]
    warnings = [message for level, message in said if level == logging.WARNING]
    assert len(warnings) == 2, said  # one per loss
    for warning in warnings:
        assert f"cannot reach NATS at {nats_server.url}" in warning
        assert "sales stay in the outbox" in warning and "check the network and the hub's NATS" in warning
    recoveries = [message for level, message in said if level == logging.INFO and "reached NATS" in message]
    assert len(recoveries) == 2, said


async def test_an_outbox_locked_by_another_program_is_retried_said_once_and_drained_once_free(
        tmp_path: Path, nats_server: EmbeddedNats, caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    caplog.set_level(logging.INFO, logger=forwarder.__name__)
    monkeypatch.setattr(forwarder, "RETRY", Backoff(initial=0.05, maximum=0.5))  # retries come quicker
    await ensure_stream(nats_server)
    outbox = Outbox(tmp_path / FILE_NAME, "demo", "store-001")
    for _ in range(3):
        outbox.append("sale.completed", 1, SALE)
    outbox.close()
    lock = sqlite3.connect(tmp_path / FILE_NAME, isolation_level=None)
    lock.execute("BEGIN EXCLUSIVE")  # held well beyond the outbox's wait for a lock, for several drains
    released_at = trio.current_time() + 3 * 2.0 + 1
    try:
        async with _edge(tmp_path / FILE_NAME, nats_server) as tree:
            await wait_until(lambda: _has(nats_server, [1, 2, 3]))  # published; their release is refused
            status = await tree.ask("forwarder", "status")
            assert status["hub_link"] == "connected" and status["outbox_depth"] == 3
            await trio.sleep_until(released_at)  # how long the other program holds it: not a synchronisation
            assert await tree.ask("outbox", "depth") == 3
            lock.execute("COMMIT")
            await wait_until(lambda: _depth(tree, 0), timeout=10)
            assert tree.restarts == 0
    finally:
        if lock.in_transaction:
            lock.execute("COMMIT")
        lock.close()
    assert await _stream_seqs(nats_server) == [1, 2, 3]  # the events published again were dropped
    said = [(record.levelno, record.getMessage()) for record in caplog.records
            if record.name == forwarder.__name__ and record.levelno >= logging.INFO]
    warnings = [message for level, message in said if level == logging.WARNING]
    assert len(warnings) == 1 and "cannot release" in warnings[0] and "busy" in warnings[0], said
    assert any(level == logging.INFO and "answers again" in message for level, message in said), said


async def _depth(tree: Tree, expected: int) -> bool:
    return await tree.ask("outbox", "depth") == expected


async def _has(nats_server: EmbeddedNats, seqs: list[int]) -> bool:
    return await _stream_seqs(nats_server) == seqs


async def _failures_above(count: float) -> bool:
    return _failures() > count


async def _status(tree: Tree, link: str) -> dict[str, Any] | None:
    status: dict[str, Any] = await tree.ask("forwarder", "status")
    return status if status["hub_link"] == link else None
