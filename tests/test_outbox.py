"""The outbox answers a refused event instead of crashing, stamps plausible times whatever the store's
clock says, forgets old idempotency keys while it runs, and answers "busy" (never a crash) while
another program holds its file locked."""

from __future__ import annotations

import copy
import logging
import sqlite3
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgpack
import pytest

from actors.protocol import Rejected
from actors.storage import outbox as outbox_module
from actors.storage.db import FILE_NAME
from actors.storage.outbox import Committed, JournalRefused, Outbox, OutboxActor
from edge_runtime import ChildSpec, SupervisorSpec, supervision_tree
from novapos.__about__ import BUILD_FLOOR_MS
from novapos.wire.envelope import Envelope, decode
from tests.conftest import wait_until
from tests.events import sale_event

BODY = sale_event().body


def _broken(change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    body = copy.deepcopy(BODY)
    change(body)
    return body


REFUSED = [
    _broken(lambda body: body["lines"][0].update(name="Coffee\x00")),
    _broken(lambda body: body["lines"][0].update(quantity=0)),
    _broken(lambda body: body["total"].update(minor=1)),
    _broken(lambda body: body.update(lines=[])),
    _broken(lambda body: body["change"].update(minor=0.5)),
    _broken(lambda body: body["lines"][0].update(name="Coffee \ud800")),  # msgpack cannot encode it
]


def _tree(path: Path) -> SupervisorSpec:
    return SupervisorSpec("test", children=[ChildSpec("outbox", OutboxActor, (path, "demo", "store-001"))])


async def test_a_refused_event_is_an_answer_and_writes_nothing(tmp_path: Path) -> None:
    async with supervision_tree(_tree(tmp_path / FILE_NAME)) as tree:
        first = await tree.ask("outbox", "append", "sale.completed", 1, BODY, print_on="p", key="cart-1")
        assert isinstance(first, Committed) and first.seq == 1
        for attempt in range(10):
            answer = await tree.ask("outbox", "append", "sale.completed", 1, REFUSED[attempt % len(REFUSED)],
                                    print_on="p", key=f"cart-bad-{attempt}")
            assert isinstance(answer, Rejected) and answer.reason == "invalid", answer
            assert answer.message  # says what is wrong
            assert await tree.ask("outbox", "committed", f"cart-bad-{attempt}") is None
        assert tree.restarts == 0
        assert await tree.ask("outbox", "depth") == 1
        after = await tree.ask("outbox", "append", "sale.completed", 1, BODY, print_on="p", key="cart-2")
        assert isinstance(after, Committed) and after.seq == 2  # no sequence number was used up
    outbox = Outbox(tmp_path / FILE_NAME, "demo", "store-001")
    try:
        assert [msgpack.unpackb(item.payload)["seq"] for item in outbox.pending(100)] == [1, 2]
    finally:
        outbox.close()


async def test_a_locked_file_is_a_busy_answer_the_reads_go_on_and_no_sequence_number_is_used(
        tmp_path: Path) -> None:
    path = tmp_path / FILE_NAME
    first = Outbox(path, "demo", "store-001")
    sold = first.append("sale.completed", 1, BODY, print_on="p", key="cart-1")
    first.close()
    assert isinstance(sold, Committed)
    lock = sqlite3.connect(path, isolation_level=None)
    lock.execute("BEGIN EXCLUSIVE")  # a backup or a sqlite3 shell, for longer than the outbox waits
    try:
        async with supervision_tree(_tree(path)) as tree:  # starts under the lock
            for attempt in range(3):
                answer = await tree.ask("outbox", "append", "sale.completed", 1, BODY, print_on="p",
                                        key=f"cart-{attempt + 2}")
                assert isinstance(answer, Rejected) and answer.reason == "busy", answer
                assert "nothing was saved; send complete again" in answer.message
            removed = await tree.ask("outbox", "remove", [str(sold.id)])
            assert isinstance(removed, Rejected) and removed.reason == "busy"
            assert [item.event_id for item in await tree.ask("outbox", "pending", 10)] == [str(sold.id)]
            assert await tree.ask("outbox", "depth") == 1
            assert (await tree.ask("outbox", "backlog")).depth == 1
            assert (await tree.ask("outbox", "committed", "cart-1")).seq == 1
            assert tree.restarts == 0
            lock.execute("COMMIT")
            after = await tree.ask("outbox", "append", "sale.completed", 1, BODY, print_on="p", key="cart-2")
            assert isinstance(after, Committed) and after.seq == 2  # the busy tries used no number
            assert await tree.ask("outbox", "remove", [str(sold.id)]) is None
            assert await tree.ask("outbox", "depth") == 1
            assert tree.restarts == 0
    finally:
        if lock.in_transaction:
            lock.execute("COMMIT")
        lock.close()


def _stamped(outbox: Outbox) -> list[int]:
    return [decode(item.payload).ts for item in outbox.pending(100)]  # decode: the hub accepts them


def _wall_clock(monkeypatch: pytest.MonkeyPatch, when_ms: int) -> None:
    monkeypatch.setattr(outbox_module.time, "time_ns", lambda: when_ms * 1_000_000)


def test_a_clock_in_1970_stamps_the_build_date_and_says_so_once(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger=outbox_module.__name__)
    _wall_clock(monkeypatch, 0)
    outbox = Outbox(tmp_path / FILE_NAME, "demo", "store-001")
    try:
        for _ in range(3):
            assert isinstance(outbox.append("sale.completed", 1, BODY), Committed)
        assert _stamped(outbox) == [BUILD_FLOOR_MS] * 3
    finally:
        outbox.close()
    warnings = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
    floor = datetime.fromtimestamp(BUILD_FLOOR_MS / 1000, UTC).strftime("%Y-%m-%d")
    assert len(warnings) == 1, warnings
    assert "1970-01-01" in warnings[0] and "NTP" in warnings[0] and floor in warnings[0]


def test_a_clock_that_once_jumped_years_ahead_does_not_date_every_later_sale(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """A box whose clock read 2100 for one sale (an RTC fault before NTP) must not stamp 2100 on every
    sale after: beyond a day ahead of the clock, the stored time is the wrong one."""
    caplog.set_level(logging.WARNING, logger=outbox_module.__name__)
    now_ms = time.time_ns() // 1_000_000
    year_2100 = 4_102_444_800_000
    _wall_clock(monkeypatch, year_2100)
    outbox = Outbox(tmp_path / FILE_NAME, "demo", "store-001")
    try:
        outbox.append("sale.completed", 1, BODY)
        _wall_clock(monkeypatch, now_ms)  # NTP put it right
        for step in range(3):
            _wall_clock(monkeypatch, now_ms + step)
            outbox.append("sale.completed", 1, BODY)
        assert _stamped(outbox) == [year_2100, now_ms, now_ms + 1, now_ms + 2]
        assert outbox.now_ms() == now_ms + 2
    finally:
        outbox.close()
    warnings = [record.getMessage() for record in caplog.records if record.levelno == logging.WARNING]
    assert len(warnings) == 1 and "2100-01-01" in warnings[0], warnings


def test_a_clock_stepped_back_never_stamps_before_the_last_committed_sale(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    now_ms = time.time_ns() // 1_000_000
    _wall_clock(monkeypatch, now_ms)
    outbox = Outbox(tmp_path / FILE_NAME, "demo", "store-001")
    outbox.append("sale.completed", 1, BODY)
    outbox.close()
    _wall_clock(monkeypatch, now_ms - 3_600_000)  # an hour back, across a restart: the file remembers
    outbox = Outbox(tmp_path / FILE_NAME, "demo", "store-001")
    try:
        outbox.append("sale.completed", 1, BODY)
        _wall_clock(monkeypatch, now_ms + 5)  # the clock moves on again
        outbox.append("sale.completed", 1, BODY)
        assert _stamped(outbox) == [now_ms, now_ms, now_ms + 5]
    finally:
        outbox.close()


async def test_old_idempotency_keys_are_forgotten_while_the_outbox_runs(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(outbox_module, "KEEP_KEYS_S", 1.0)
    monkeypatch.setattr(outbox_module, "PURGE_EVERY_S", 0.2, raising=False)
    async with supervision_tree(_tree(tmp_path / FILE_NAME)) as tree:
        await tree.ask("outbox", "append", "sale.completed", 1, BODY, key="cart-old")
        assert await tree.ask("outbox", "committed", "cart-old") is not None

        async def forgotten() -> bool:
            return await tree.ask("outbox", "committed", "cart-old") is None
        await wait_until(forgotten, timeout=10)
        assert tree.restarts == 0
        await tree.ask("outbox", "append", "sale.completed", 1, BODY, key="cart-new")
        assert await tree.ask("outbox", "committed", "cart-new") is not None  # a recent key stays


def test_a_journal_writes_with_the_event_and_its_refusal_writes_nothing(tmp_path: Path) -> None:
    """A journal's rows commit in the event's transaction; a journal that refuses leaves no event, no key,
    no print job, no sequence number used, and the caller is answered with its reason."""
    def journal(db: sqlite3.Connection, event: Envelope) -> None:
        db.execute("CREATE TABLE IF NOT EXISTS seen (id TEXT PRIMARY KEY, seq INTEGER)")
        if event.body["till"] == "refused":
            db.execute("INSERT INTO seen VALUES ('half-written', 0)")  # rolled back with the event
            raise JournalRefused("conflict", "that line was already returned")
        db.execute("INSERT INTO seen VALUES (?, ?)", (str(event.id), event.seq))

    outbox = Outbox(tmp_path / FILE_NAME, "demo", "store-001", journals=(journal,))
    try:
        first = outbox.append("sale.completed", 1, BODY, print_on="p", key="cart-1")
        assert isinstance(first, Committed)
        refused = outbox.append("sale.completed", 1, {**BODY, "till": "refused"}, print_on="p", key="cart-2")
        assert refused == Rejected("conflict", "that line was already returned")
        assert outbox.committed("cart-2") is None and outbox.depth() == 1
        again = outbox.append("sale.completed", 1, BODY, key="cart-1")  # a resend: the journal is not called twice
        assert isinstance(again, Committed) and not again.new
        db = sqlite3.connect(tmp_path / FILE_NAME)
        assert db.execute("SELECT id, seq FROM seen").fetchall() == [(str(first.id), 1)]
        assert db.execute("SELECT count(*) FROM print_jobs").fetchone() == (1,)
        db.close()
        after = outbox.append("sale.completed", 1, BODY, key="cart-3")
        assert isinstance(after, Committed) and after.seq == 2
    finally:
        outbox.close()


def test_the_backlog_read_beside_the_outbox_is_the_outboxs_own_and_release_reports_it(tmp_path: Path) -> None:
    path = tmp_path / FILE_NAME
    outbox = Outbox(path, "demo", "store-001")
    reader = sqlite3.connect(f"file:{path}?mode=ro", uri=True)  # the health reporter's, beside the outbox
    try:
        assert outbox_module.read_backlog(reader, outbox_module.quiet_event_time) == outbox.backlog() \
            == outbox_module.Backlog(0, None)
        sold = [outbox.append("sale.completed", 1, BODY, key=f"cart-{n}") for n in range(3)]
        assert all(isinstance(s, Committed) for s in sold)
        beside, own = outbox_module.read_backlog(reader, outbox_module.quiet_event_time), outbox.backlog()
        assert beside.depth == own.depth == 3
        assert beside.oldest_age_s is not None and own.oldest_age_s is not None
        assert 0 <= beside.oldest_age_s < 5 and abs(beside.oldest_age_s - own.oldest_age_s) < 1
        released = outbox.release([str(s.id) for s in sold[:2] if isinstance(s, Committed)])
        assert released.refused is None and released.backlog.depth == 1
        assert outbox.release([]) == outbox_module.Released(None, outbox.backlog())
    finally:
        reader.close()
        outbox.close()
