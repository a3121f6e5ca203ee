"""A store box upgraded from any earlier schema version keeps its unsent sales: the file migrated on open still holds
each waiting event, byte for byte and in order, the outbox hands every one to the forwarder once, and the store's
numbering goes on from where it was (tests/test_upgrade_compat.py does it with the previous release's real code)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from actors.storage import db as local_db
from actors.storage.outbox import Committed, Outbox
from novapos.wire.subjects import event_subject
from tests.events import sale_event

WAITING = 5


def _file_at(path: Path, version: int) -> list[tuple[int, str, str, bytes]]:
    """A store file at schema `version`, as the release that had it left it, with WAITING unsent sales (numbers
    38..42: the ones before were sent); those rows."""
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("BEGIN")
    for migration in local_db.MIGRATIONS[:version]:
        migration(db)
    db.execute(f"PRAGMA user_version = {version}")
    rows = [(seq, str(event.id), event_subject("demo", "store-001", "sale.completed"), event.encode())
            for seq in range(38, 38 + WAITING) for event in [sale_event(seq=seq)]]
    db.executemany("INSERT INTO outbox (seq, id, subject, payload) VALUES (?, ?, ?, ?)", rows)
    db.execute("UPDATE store_sequence SET last_seq = 42")
    db.execute("COMMIT")
    db.close()
    return rows


@pytest.mark.parametrize("version", range(1, len(local_db.MIGRATIONS)))
def test_a_file_from_an_older_schema_keeps_and_sends_its_waiting_sales_and_numbers_on(
        tmp_path: Path, version: int) -> None:
    path = tmp_path / local_db.FILE_NAME
    waiting = _file_at(path, version)
    outbox = Outbox(path, "demo", "store-001")
    try:
        assert outbox.depth() == WAITING
        pending = outbox.pending(100)
        assert [(o.event_id, o.subject, bytes(o.payload)) for o in pending] == [row[1:] for row in waiting]
        sale = sale_event().body
        committed = outbox.append("sale.completed", 1, sale)
        assert isinstance(committed, Committed) and committed.seq == 43
        assert outbox.remove([o.event_id for o in pending]) is None  # acknowledged: gone, each once
        assert [o.event_id for o in outbox.pending(100)] == [str(committed.id)]
    finally:
        outbox.close()
    migrated = sqlite3.connect(path)
    try:
        assert migrated.execute("PRAGMA user_version").fetchone()[0] == len(local_db.MIGRATIONS)
    finally:
        migrated.close()
