"""The store box's own SQLite file: the event outbox, the print spool, the completed carts and
each till's open session and cart.

One file so that a sale, its receipt's print job and its idempotency key (the cart it completed)
commit in ONE transaction: a sale the cashier saw complete always has its receipt queued, and a
resend of the same completion finds it instead of selling again, even after kill -9 or a power cut,
at the cost of a single fsync. WAL lets the outbox and the spooler each hold a connection;
synchronous=FULL makes a returned commit a durable one.

The schema is versioned (PRAGMA user_version) and migrated forward when the file is opened, so a
store box keeps its unsent sales and queued receipts across software upgrades.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)

FILE_NAME = "edge.sqlite3"

_PRINT_JOBS = """
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
"""

_V1 = """
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
CREATE TABLE IF NOT EXISTS completed (
    key          TEXT PRIMARY KEY,
    event_id     TEXT NOT NULL,
    seq          INTEGER NOT NULL,
    body         BLOB NOT NULL,
    completed_at REAL NOT NULL
);
"""


def _run(db: sqlite3.Connection, script: str) -> None:
    """Each statement in the caller's transaction (executescript would commit it first)."""
    for statement in script.split(";"):
        if statement.strip():
            db.execute(statement)


def _version_1(db: sqlite3.Connection) -> None:
    """The first versioned schema. A file from a pre-release build has a print_jobs table without
    seq and reason (and a narrower state check): rebuild it, keeping its jobs in their order."""
    _run(db, _V1)
    columns = {row[1] for row in db.execute("PRAGMA table_info(print_jobs)")}
    if columns and "seq" not in columns:
        db.execute("ALTER TABLE print_jobs RENAME TO print_jobs_prerelease")
        db.execute("DROP INDEX IF EXISTS print_jobs_queue")
        _run(db, _PRINT_JOBS)
        db.execute("INSERT INTO print_jobs (id, printer, kind, payload, seq, state, attempts, queued_at, printed_at) "
                   "SELECT id, printer, kind, payload, rowid, state, attempts, queued_at, printed_at "
                   "FROM print_jobs_prerelease")
        db.execute("DROP TABLE print_jobs_prerelease")
    _run(db, _PRINT_JOBS)


def _version_2(db: sqlite3.Connection) -> None:
    """Open tills: a till's session and cart survive its actor's restart and the process's."""
    db.execute("CREATE TABLE IF NOT EXISTS open_tills (till TEXT PRIMARY KEY, state TEXT NOT NULL, "
               "saved_at REAL NOT NULL)")


def _version_3(db: sqlite3.Connection) -> None:
    """The last committed event's timestamp, so that a clock stepped back (or a box booted in 1970)
    never stamps a sale before the one committed before it, across restarts too."""
    db.execute("ALTER TABLE store_sequence ADD COLUMN last_ts INTEGER NOT NULL DEFAULT 0")


MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [_version_1, _version_2, _version_3]
"""Migration N+1 takes a file at user_version N to N+1. Append; never edit one that has shipped."""


def connect(path: Path) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit), the schema migrated to the latest."""
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("PRAGMA busy_timeout=5000")
    _migrate(db, path)
    return db


def _migrate(db: sqlite3.Connection, path: Path) -> None:
    db.execute("BEGIN IMMEDIATE")  # two actors opening the file at once: one migrates, the other waits
    try:
        version = db.execute("PRAGMA user_version").fetchone()[0]
        for number, migration in enumerate(MIGRATIONS[version:], start=version + 1):
            log.info("migrating %s to schema version %d of %d", path, number, len(MIGRATIONS))
            migration(db)
            db.execute(f"PRAGMA user_version = {number}")
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
