"""The store box's SQLite file is migrated forward on open, keeping what it holds."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from actors.storage import db as local_db

PRE_RELEASE = """
CREATE TABLE outbox (seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, subject TEXT NOT NULL, payload BLOB NOT NULL);
CREATE TABLE store_sequence (only_row INTEGER PRIMARY KEY CHECK (only_row = 1), last_seq INTEGER NOT NULL);
INSERT INTO store_sequence VALUES (1, 42);
INSERT INTO outbox VALUES (42, 'e-42', 'novapos.demo.store-001.evt.sale_completed', x'00');
CREATE TABLE print_jobs (id TEXT PRIMARY KEY, printer TEXT NOT NULL, kind TEXT NOT NULL, payload BLOB NOT NULL,
    state TEXT NOT NULL DEFAULT 'queued' CHECK (state IN ('queued', 'printed')), attempts INTEGER NOT NULL DEFAULT 0,
    queued_at REAL NOT NULL, printed_at REAL);
CREATE INDEX print_jobs_queue ON print_jobs (printer, state, queued_at);
INSERT INTO print_jobs (id, printer, kind, payload, queued_at) VALUES ('e-41', 'p', 'sale.completed', x'00', 1.0);
INSERT INTO print_jobs (id, printer, kind, payload, queued_at) VALUES ('e-42', 'p', 'sale.completed', x'00', 2.0);
"""


def test_a_new_file_gets_the_latest_schema(tmp_path: Path) -> None:
    db = local_db.connect(tmp_path / local_db.FILE_NAME)
    assert db.execute("PRAGMA user_version").fetchone()[0] == len(local_db.MIGRATIONS)
    assert {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")} >= {
        "outbox", "store_sequence", "print_jobs", "completed"}


def test_a_pre_release_file_keeps_its_sales_and_jobs(tmp_path: Path) -> None:
    path = tmp_path / local_db.FILE_NAME
    old = sqlite3.connect(path)
    old.executescript(PRE_RELEASE)
    old.close()
    db = local_db.connect(path)
    assert db.execute("SELECT last_seq, last_ts FROM store_sequence").fetchone() == (42, 0)  # no time known yet
    assert db.execute("SELECT id FROM outbox").fetchall() == [("e-42",)]
    assert db.execute("SELECT id, seq, state FROM print_jobs ORDER BY seq").fetchall() == [
        ("e-41", 1, "queued"), ("e-42", 2, "queued")]
    db.execute("UPDATE print_jobs SET state = 'failed', reason = 'test' WHERE id = 'e-41'")  # the new check holds
    db.close()
    again = local_db.connect(path)  # opening again changes nothing
    assert again.execute("SELECT count(*) FROM print_jobs").fetchone()[0] == 2
    assert again.execute("PRAGMA user_version").fetchone()[0] == len(local_db.MIGRATIONS)
