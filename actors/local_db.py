"""The store box's own SQLite file: the event outbox and the print spool, side by side.

One file so that a sale, its receipt's print job and its idempotency key (the cart it completed)
commit in ONE transaction: a sale the cashier saw complete always has its receipt queued, and a
resend of the same completion finds it instead of selling again, even after kill -9 or a power cut,
at the cost of a single fsync. WAL lets the outbox and the spooler each hold a connection; synchronous=FULL makes a
returned commit a durable one.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

FILE_NAME = "edge.sqlite3"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    seq      INTEGER PRIMARY KEY,
    id       TEXT NOT NULL UNIQUE,
    subject  TEXT NOT NULL,
    payload  BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS store_sequence (
    only_row INTEGER PRIMARY KEY CHECK (only_row = 1),
    last_seq INTEGER NOT NULL
);
INSERT OR IGNORE INTO store_sequence (only_row, last_seq) VALUES (1, 0);
CREATE TABLE IF NOT EXISTS print_jobs (
    id         TEXT PRIMARY KEY,
    printer    TEXT NOT NULL,
    kind       TEXT NOT NULL,
    payload    BLOB NOT NULL,
    seq        INTEGER NOT NULL,
    state      TEXT NOT NULL DEFAULT 'queued' CHECK (state IN ('queued', 'printed', 'failed')),
    attempts   INTEGER NOT NULL DEFAULT 0,
    reason     TEXT,
    queued_at  REAL NOT NULL,
    printed_at REAL
);
CREATE INDEX IF NOT EXISTS print_jobs_queue ON print_jobs (printer, state, seq);
CREATE TABLE IF NOT EXISTS completed (
    key          TEXT PRIMARY KEY,
    event_id     TEXT NOT NULL,
    seq          INTEGER NOT NULL,
    body         BLOB NOT NULL,
    completed_at REAL NOT NULL
);
"""


def connect(path: Path) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit), schema in place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("PRAGMA busy_timeout=5000")
    db.executescript(_SCHEMA)
    return db
