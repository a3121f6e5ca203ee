"""Review fixes of backups and restore: the hub counts the store's events still in the JetStream stream, junk dead
letters' numbers are ignored and a numbering beyond a bigint refused, dead letters are read by their head only,
rotation keeps the backups holding the most of the store, and a replaced store file keeps its -wal and -shm."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
import uuid
from pathlib import Path

import msgpack
import pytest

from actors.storage import db as local_db
from actors.storage.backup import BackupFailed, backup_name, backups, take_backup
from actors.storage.restore import finish, stage
from hub.backups.holds import HEAD_BYTES, _seq, answer_restore, holds
from novapos.demo.embedded_nats import EmbeddedNats
from novapos.wire.envelope import MAX_SEQ, Envelope
from novapos.wire.restore import HubHolds, decode_answer, encode_request, restore_subject
from novapos.wire.subjects import event_subject
from tests.audit_support import migrated


def _store_file(path: Path, last_seq: int) -> Path:
    with local_db.connect(path) as db:
        db.execute("UPDATE store_sequence SET last_seq = ?", (last_seq,))
    return path


def _envelope(seq: int, store: str = "store-001", body_bytes: int = 0) -> Envelope:
    return Envelope(uuid.uuid4(), "sale.completed", 1, "demo", store, seq, 1_764_000_000_000,
                    {"pad": "x" * body_bytes})


def test_the_restore_numbers_above_the_store_s_events_still_in_the_stream(
        tmp_path: Path, nats_server: EmbeddedNats, database_url: str) -> None:
    """Sales the old box published that no hub has ingested yet (a backlog, held events, a replay to come) hold
    numbers too: more of them than --skip wait in the stream, and the restored box still numbers above them."""
    async def scenario() -> HubHolds:
        link = nats_server.hub_link()
        await link.connect(timeout=5)
        try:
            await link.ensure_event_stream()
            for seq in range(1, 151):  # published, never ingested: no hub runs
                await link.js.publish(event_subject("demo", "store-001", "sale.completed"), _envelope(seq).encode())
            await link.js.publish(event_subject("demo", "store-002", "sale.completed"), _envelope(900, "store-002").encode())
            async with migrated(database_url) as pool:
                await pool.execute("INSERT INTO inbox (event_id, tenant, store, seq, type) VALUES "
                                   "($1, 'demo', 'store-001', 3, 'sale.completed')", uuid.uuid4())
                assert (await holds(pool, "demo", "store-001", 0)).last_seq == 3  # PostgreSQL alone knows #3
                other = decode_answer(await answer_restore(pool, link, restore_subject("demo", "store-009"),
                                                           encode_request(0)))
                assert other.last_seq == 0  # a store with no event in the stream
                return decode_answer(await answer_restore(pool, link, restore_subject("demo", "store-001"),
                                                          encode_request(2)))
        finally:
            await link.close()
    answer = asyncio.run(scenario())
    assert answer.last_seq == 150
    backup = take_backup(_store_file(tmp_path / "old" / local_db.FILE_NAME, 2), tmp_path / "backups", keep=5).path
    db_path = tmp_path / "new" / local_db.FILE_NAME
    db_path.parent.mkdir()
    restored = finish(backup, stage(backup, db_path, "demo", "store-001"), db_path, answer, skip=100)
    assert restored.next_seq == 251


def test_a_junk_dead_letter_s_number_is_ignored_and_a_numbering_beyond_a_bigint_refused(
        tmp_path: Path, database_url: str) -> None:
    async def scenario() -> tuple[HubHolds, HubHolds]:
        async with migrated(database_url) as pool:
            subject = "novapos.demo.store-001.evt.sale_completed"
            await pool.executemany("INSERT INTO dead_letters (event_id, subject, reason, payload) VALUES ($1, $2, $3, $4)",
                                   [(None, subject, "junk", msgpack.packb({"seq": 2**63})),
                                    (None, subject, "junk", msgpack.packb({"seq": 2**64 - 1})),
                                    (None, subject, "big", _envelope(7, body_bytes=3 * HEAD_BYTES).encode())])
            first = await holds(pool, "demo", "store-001", 0)
            await pool.execute("INSERT INTO dead_letters (subject, reason, payload) VALUES ($1, 'junk', $2)",
                               subject, msgpack.packb({"seq": MAX_SEQ - 5}))
            return first, await holds(pool, "demo", "store-001", 0)
    ignored, at_the_edge = asyncio.run(scenario())
    assert ignored.last_seq == 7  # found at the head of a payload larger than what is read of it
    assert at_the_edge.last_seq == MAX_SEQ - 5

    backup = take_backup(_store_file(tmp_path / "old" / local_db.FILE_NAME, 2), tmp_path / "backups", keep=5).path
    db_path = tmp_path / "new" / local_db.FILE_NAME
    db_path.parent.mkdir()
    staged = stage(backup, db_path, "demo", "store-001")
    with pytest.raises(BackupFailed, match="above the largest a sequence number holds"):
        finish(backup, staged, db_path, at_the_edge, skip=100)
    assert sorted(path.name for path in db_path.parent.iterdir()) == []  # no .restoring left, nothing in place


def test_the_seq_is_read_from_the_head_of_a_payload() -> None:
    payload = _envelope(42, body_bytes=100_000).encode()
    assert _seq(payload[:HEAD_BYTES]) == 42
    assert _seq(b"\xc1\xff") is None and _seq(msgpack.packb([1, 2])) is None
    assert _seq(msgpack.packb({"seq": 0})) is None and _seq(msgpack.packb({"seq": True})) is None


def test_rotation_keeps_the_backups_holding_the_most_of_the_store(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from datetime import UTC, datetime, timedelta
    folder = tmp_path / "backups"
    folder.mkdir()
    now = datetime.now(UTC)
    good = [folder / backup_name(now - timedelta(hours=3 - n), 1000 + n) for n in range(3)]
    for path in good:
        path.write_bytes(b"")
    # the clock was ahead: a backup named in the future, holding less of the store than the newest
    ahead = folder / backup_name(now + timedelta(days=1), 900)
    ahead.write_bytes(b"")

    empty = _store_file(tmp_path / "new-box" / local_db.FILE_NAME, 0)  # an empty replacement box, same folder
    taken = take_backup(empty, folder, keep=2)
    assert set(backups(folder)) == {*good, ahead, taken.path}  # none holding more was deleted, nor the new one
    assert "kept, not rotated" in caplog.text

    store = _store_file(tmp_path / "store" / local_db.FILE_NAME, 1005)
    newest = take_backup(store, folder, keep=2)
    assert backups(folder) == [good[-1], newest.path]  # by sequence number, not by the names' times


def test_a_replaced_store_file_keeps_its_wal_with_the_commits_not_checkpointed(tmp_path: Path) -> None:
    db_path = tmp_path / "store" / local_db.FILE_NAME
    local_db.connect(db_path).close()
    commit_and_die = (  # a commit in the WAL, never checkpointed: the process dies with the connection open
        "import os, sqlite3, sys\n"
        "db = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
        "db.execute('PRAGMA wal_autocheckpoint=0')\n"
        "db.execute('UPDATE store_sequence SET last_seq = 77')\n"
        "os._exit(0)\n")
    subprocess.run([sys.executable, "-c", commit_and_die, str(db_path)], check=True)
    assert os.path.getsize(f"{db_path}-wal") > 0

    backup = take_backup(_store_file(tmp_path / "old" / local_db.FILE_NAME, 5), tmp_path / "backups", keep=5).path
    restored = finish(backup, stage(backup, db_path, "demo", "store-001"), db_path, HubHolds(5, (), False), skip=10,
                      previous_suffix=".before-restore-x")
    assert restored.previous == db_path.with_name("edge.sqlite3.before-restore-x")
    assert db_path.with_name("edge.sqlite3.before-restore-x-wal").exists()
    kept = sqlite3.connect(restored.previous)
    try:
        assert kept.execute("SELECT last_seq FROM store_sequence").fetchone() == (77,)  # the commit in the WAL
    finally:
        kept.close()
    with sqlite3.connect(db_path) as new:
        assert new.execute("SELECT last_seq FROM store_sequence").fetchone() == (15,)


def test_the_restore_names_the_carts_the_backup_holds_open(tmp_path: Path) -> None:
    """One of them may have been completed by the old box after the backup: neither the box nor the hub can tell
    (a sale's event does not name its cart), so the restore says which, for the cashier to check first."""
    import json
    old = _store_file(tmp_path / "old" / local_db.FILE_NAME, 5)
    with local_db.connect(old) as db:
        db.executemany("INSERT INTO open_tills (till, state, saved_at) VALUES (?, ?, 0)", [
            ("till-1", json.dumps({"session": {}, "cart": {"id": "cart-a", "lines": [{"sku": "COF-250"}]}})),
            ("till-2", json.dumps({"session": {}, "cart": {"id": "cart-b", "lines": []}})),
            ("till-3", "not json")])
    backup = take_backup(old, tmp_path / "backups", keep=5).path
    db_path = tmp_path / "new" / local_db.FILE_NAME
    db_path.parent.mkdir()
    restored = finish(backup, stage(backup, db_path, "demo", "store-001"), db_path, HubHolds(5, (), False))
    assert restored.open_carts == (("till-1", "cart-a"),)
