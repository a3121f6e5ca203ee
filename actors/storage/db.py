"""The store box's own SQLite file: the event outbox, the print spool, the completed carts and
each till's open session and cart.

One file so that a sale, its receipt's print job and its idempotency key (the cart it completed)
commit in ONE transaction: a sale the cashier saw complete always has its receipt queued, and a
resend of the same completion finds it instead of selling again, even after kill -9 or a power cut,
at the cost of a single fsync. WAL lets the outbox and the spooler each hold a connection;
synchronous=FULL makes a returned commit a durable one.

The schema is versioned (PRAGMA user_version) and migrated forward when the file is opened, so a
store box keeps its unsent sales and queued receipts across software upgrades.

Another program may hold the file locked (a backup copying it, a `sqlite3` shell left in a
transaction). Reads go on (WAL); a write waits at most LOCK_WAIT_S for the lock, then fails with
SQLITE_BUSY (`is_busy`), which every user of the file answers as a state to ride out, never a
crash: the outbox refuses the sale with "busy" (nothing written, send again), the forwarder and
the spooler try again later, a till's saved cart is saved at its next change. Opening the file
writes nothing unless a migration is due, so actors (re)start under a lock.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

log = logging.getLogger(__name__)

FILE_NAME = "edge.sqlite3"

LOCK_WAIT_S = 2.0
"""The longest a write waits for another writer. The store's own writers hold the lock for
milliseconds (one fsync'd commit); a lock held longer is another program's, and waiting it out
inside an actor would stall that actor's mailbox (and every caller's ask) instead."""

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


def _version_4(db: sqlite3.Connection) -> None:
    """Drawer sessions and their cash ledger (actors.cash.journal): kept in the transaction of each sale, return,
    drawer event and void, so a Z report is one indexed aggregate and never disagrees with the outbox; each session
    keeps running counts (cash, sales, returns) for the checks that must not wait on it. One open session per till
    (a partial unique index); one Z number per till and close."""
    _run(db, """
CREATE TABLE IF NOT EXISTS drawer_sessions (
    id               TEXT PRIMARY KEY,
    till             TEXT NOT NULL,
    currency         TEXT NOT NULL,
    opened_at        INTEGER NOT NULL,
    opened_by        TEXT NOT NULL,
    float_minor      INTEGER NOT NULL,
    float_counts     TEXT NOT NULL,
    closed_at        INTEGER,
    closed_by        TEXT,
    counted_minor    INTEGER,
    expected_minor   INTEGER,
    difference_minor INTEGER,
    approver         TEXT,
    z_number         INTEGER,
    cash_minor       INTEGER NOT NULL DEFAULT 0,
    sales            INTEGER NOT NULL DEFAULT 0,
    returns          INTEGER NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX IF NOT EXISTS drawer_sessions_open ON drawer_sessions (till) WHERE closed_at IS NULL;
CREATE UNIQUE INDEX IF NOT EXISTS drawer_sessions_z ON drawer_sessions (till, z_number) WHERE z_number IS NOT NULL;
CREATE TABLE IF NOT EXISTS cash_ledger (
    session  TEXT NOT NULL,
    seq      INTEGER NOT NULL,
    kind     TEXT NOT NULL,
    method   TEXT NOT NULL DEFAULT '',
    scheme   TEXT NOT NULL DEFAULT '',
    rate_ppm INTEGER NOT NULL DEFAULT 0,
    amount   INTEGER NOT NULL,
    cash     INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS cash_ledger_report ON cash_ledger (session, kind, method, scheme, rate_ppm, amount, cash)
""")


def _version_5(db: sqlite3.Connection) -> None:
    """The store's own sales journal (actors.returns.journal): every sale's lines with what is still returnable,
    and its tenders, kept in each event's transaction, so a line is never refunded twice."""
    _run(db, """
CREATE TABLE IF NOT EXISTS store_sales (
    order_id   TEXT PRIMARY KEY,
    ts         INTEGER NOT NULL,
    till       TEXT NOT NULL,
    currency   TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS store_sale_lines (
    order_id    TEXT NOT NULL REFERENCES store_sales (order_id),
    line_no     INTEGER NOT NULL,
    sku         TEXT NOT NULL,
    name        TEXT NOT NULL,
    quantity    INTEGER NOT NULL,
    unit_minor  INTEGER NOT NULL,
    amount      INTEGER NOT NULL,
    tax_class   TEXT,
    rate_ppm    INTEGER,
    included    INTEGER,
    returnable  INTEGER NOT NULL CHECK (returnable >= 0),
    PRIMARY KEY (order_id, line_no)
);
CREATE TABLE IF NOT EXISTS store_sale_tenders (
    order_id   TEXT NOT NULL REFERENCES store_sales (order_id),
    tender_no  INTEGER NOT NULL,
    method     TEXT NOT NULL,
    amount     INTEGER NOT NULL,
    reference  TEXT,
    PRIMARY KEY (order_id, tender_no)
)
""")


def _version_6(db: sqlite3.Connection) -> None:
    """The hub's payment events (actors.payments.events): the inbox of every event applied, by id (a second copy is
    dropped) and by its position in the store's numbering (the last one is where a catch-up starts)."""
    _run(db, """
CREATE TABLE IF NOT EXISTS payment_inbox (
    id          TEXT PRIMARY KEY,
    position    INTEGER NOT NULL UNIQUE,
    type        TEXT NOT NULL,
    applied_at  REAL NOT NULL
)
""")


def _version_7(db: sqlite3.Connection) -> None:
    """Offline cards (actors.payments.offline): the tenant's offline limits as the hub last gave them, and the ledger
    of card approvals taken while the hub was away, counted against the store's total until the hub confirms them
    (so a restart cannot reset the total); a declined one stays as the store's follow-up, an abandoned one until the
    hub has cancelled it. A payment event the store refused (actors.payments.events) keeps its place in the inbox
    with the reason, so the events after it still apply."""
    _run(db, """
ALTER TABLE payment_inbox ADD COLUMN refused TEXT;
CREATE TABLE IF NOT EXISTS offline_card_settings (
    only_row              INTEGER PRIMARY KEY CHECK (only_row = 1),
    per_payment_minor     INTEGER NOT NULL,
    store_total_minor     INTEGER NOT NULL,
    currency              TEXT NOT NULL,
    fetched_at            REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS offline_cards (
    tender_id    TEXT PRIMARY KEY,
    till         TEXT NOT NULL,
    amount_minor INTEGER NOT NULL CHECK (amount_minor > 0),
    currency     TEXT NOT NULL,
    state        TEXT NOT NULL CHECK (state IN ('reserved', 'outstanding', 'authorized', 'declined', 'abandoned',
                                                'released')),
    scheme       TEXT NOT NULL DEFAULT '',
    masked       TEXT NOT NULL DEFAULT '',
    message      TEXT NOT NULL DEFAULT '',
    taken_at     REAL NOT NULL,
    settled_at   REAL
);
CREATE INDEX IF NOT EXISTS offline_cards_state ON offline_cards (state, taken_at)
""")


def _version_8(db: sqlite3.Connection) -> None:
    """Customers and loyalty at the store (actors.loyalty.local): a bounded cache of the store's recent customers for
    offline lookup (phone and email kept only as hashes of their normalised form: found, never shown), the tenant's
    loyalty settings as the hub last gave them, and the ledger of points redeemed offline, counted against the
    store's daily budget and each customer's cap (so a restart cannot reset them). The sales journal keeps each
    sale's customer and the points a points tender redeemed, for a return's refund to points (return.completed
    v3)."""
    _run(db, """
CREATE TABLE IF NOT EXISTS loyalty_customers (
    id           TEXT PRIMARY KEY,
    card_number  TEXT,
    name         TEXT NOT NULL DEFAULT '',
    phone_hash   TEXT,
    email_hash   TEXT,
    tier         TEXT NOT NULL DEFAULT '',
    points       INTEGER NOT NULL DEFAULT 0,
    seen_at      REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS loyalty_customers_card ON loyalty_customers (card_number);
CREATE INDEX IF NOT EXISTS loyalty_customers_phone ON loyalty_customers (phone_hash);
CREATE INDEX IF NOT EXISTS loyalty_customers_email ON loyalty_customers (email_hash);
CREATE INDEX IF NOT EXISTS loyalty_customers_seen ON loyalty_customers (seen_at);
CREATE TABLE IF NOT EXISTS loyalty_settings (
    only_row                INTEGER PRIMARY KEY CHECK (only_row = 1),
    point_value_minor       INTEGER NOT NULL CHECK (point_value_minor > 0),
    currency                TEXT NOT NULL,
    offline_budget_points   INTEGER NOT NULL CHECK (offline_budget_points >= 0),
    offline_cap_points      INTEGER NOT NULL CHECK (offline_cap_points >= 0),
    fetched_at              REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS loyalty_offline_redemptions (
    redemption   TEXT PRIMARY KEY,
    till         TEXT NOT NULL,
    customer     TEXT NOT NULL,
    points       INTEGER NOT NULL CHECK (points > 0),
    day          TEXT NOT NULL,
    state        TEXT NOT NULL CHECK (state IN ('taken', 'reversed')),
    taken_at     REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS loyalty_offline_day ON loyalty_offline_redemptions (day, customer);
ALTER TABLE store_sales ADD COLUMN customer TEXT;
ALTER TABLE store_sale_tenders ADD COLUMN points INTEGER
""")


def _version_9(db: sqlite3.Connection) -> None:
    """Offline points bound the store's exposure, not a day (actors.loyalty.local): a redemption counts against the
    budget and the cap until the sale carrying it has reached the hub's stream. Each row names that sale's event
    (while it is in the outbox, the hub does not have it) and when it was seen forwarded; the partial index keeps the
    rows still counted quick to sum however long the store runs."""
    _run(db, """
ALTER TABLE loyalty_offline_redemptions ADD COLUMN event TEXT;
ALTER TABLE loyalty_offline_redemptions ADD COLUMN forwarded_at REAL;
DROP INDEX IF EXISTS loyalty_offline_day;
CREATE INDEX IF NOT EXISTS loyalty_offline_unsent ON loyalty_offline_redemptions (customer)
    WHERE state = 'taken' AND forwarded_at IS NULL
""")


def _version_10(db: sqlite3.Connection) -> None:
    """Each unsent event keeps the trace context of its commit (novapos.tracing), so its publish, however late,
    joins the trace of the request that made it; NULL when traces were off (and for rows older than this)."""
    db.execute("ALTER TABLE outbox ADD COLUMN traceparent TEXT")


MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [_version_1, _version_2, _version_3, _version_4,
                                                           _version_5, _version_6, _version_7, _version_8,
                                                           _version_9, _version_10]
"""Migration N+1 takes a file at user_version N to N+1. Append; never edit one that has shipped."""


def connect(path: Path, lock_wait_s: float = LOCK_WAIT_S) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit), the schema migrated to the latest.

    Only a due migration writes: a file already at the latest schema opens under another
    program's lock."""
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute(f"PRAGMA busy_timeout={round(lock_wait_s * 1000)}")
    if db.execute("PRAGMA user_version").fetchone()[0] < len(MIGRATIONS):
        _migrate(db, path)
    return db


def is_busy(exc: BaseException) -> bool:
    """Whether `exc` is SQLite saying another connection holds the lock (after LOCK_WAIT_S)."""
    return (isinstance(exc, sqlite3.OperationalError)
            and getattr(exc, "sqlite_errorcode", 0) & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED))


class LockWatch:
    """Says once that the store's file is locked and once that it is free again, for one of its
    users: a lock held for minutes is two log lines, not one per attempt."""

    def __init__(self, path: Path, user: str, meanwhile: str) -> None:
        """user: who meets the lock ("the outbox"); meanwhile: what happens while it lasts."""
        self._path, self._user, self._meanwhile = path, user, meanwhile
        self._since: float | None = None

    def locked(self, exc: BaseException) -> None:
        if self._since is None:
            self._since = time.monotonic()
            log.warning("%s cannot write to %s: another program holds it locked (%s); %s. Look for a backup or a "
                        "sqlite3 shell holding it", self._user, self._path, exc, self._meanwhile)

    def free(self) -> None:
        if self._since is not None:
            log.info("%s writes to %s again after %.0f s", self._user, self._path, time.monotonic() - self._since)
            self._since = None


def _migrate(db: sqlite3.Connection, path: Path) -> None:
    db.execute("BEGIN IMMEDIATE")  # two actors opening the file at once: one migrates, the other waits
    try:
        version = db.execute("PRAGMA user_version").fetchone()[0]  # again: another opener may have migrated
        for number, migration in enumerate(MIGRATIONS[version:], start=version + 1):
            log.info("migrating %s to schema version %d of %d", path, number, len(MIGRATIONS))
            migration(db)
            db.execute(f"PRAGMA user_version = {number}")
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise


@contextmanager
def immediate(db: sqlite3.Connection) -> Iterator[None]:
    """One write transaction, taken at once (BEGIN IMMEDIATE: the write lock up front, never a deadlock upgrading a
    read), committed when the block ends and rolled back if it raises. For connections in autocommit mode."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
